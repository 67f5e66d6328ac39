#pragma once

// Where a node's password comes from, and libpq password-file lookup.
//
// Config files and connection strings name a password by reference: an
// environment variable or a libpq password file ("passfile"). This resolves
// the reference when the nodes are built; with no reference at all, libpq's
// own defaults (PGPASSWORD, PGPASSFILE, ~/.pgpass) apply when connecting.
// Nothing here ever puts a password into an error message.

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "pgcm/types.hpp"

namespace pgcm {

/// Reads an environment variable; nullopt when unset. Injectable for tests.
using env_lookup = std::function<std::optional<std::string>(const std::string& name)>;

/// The process environment (std::getenv).
env_lookup process_env();

/// A password reference.
struct password_source {
  enum class kind : std::uint8_t {
    none,         ///< no reference: libpq's defaults apply when connecting
    inline_value, ///< the password itself (discouraged in files)
    env,          ///< `value` names an environment variable holding it
    passfile,     ///< `value` is the path of a libpq password file
  };
  kind type = kind::none;
  std::string value;
};

/// What resolve_password throws: the reference cannot be resolved. The
/// message names the variable or file, never the password.
class password_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Returns the password `src` refers to for a connection as `cfg` describes
/// it (host, port, database and user select the password-file line), or
/// nullopt for kind::none. Throws password_error when the variable is unset
/// or empty, or the file is missing, unreadable, not a regular file,
/// accessible by group or others (libpq ignores such files too) or has no
/// matching line.
std::optional<std::string> resolve_password(const password_source& src, const node_config& cfg,
                                            const env_lookup& env);

/// Looks up a password in the text of a libpq password file, with libpq's
/// rules: lines `host:port:database:user:password`, `*` matches any value in
/// the first four fields, `\` escapes `:` and `\`, `#` starts a comment line,
/// the first matching line wins. An empty host or the default socket
/// directory matches `localhost`; an empty port matches `5432`.
std::optional<std::string> passfile_lookup(std::string_view contents, std::string_view host,
                                           std::string_view port, std::string_view database,
                                           std::string_view user);

} // namespace pgcm
