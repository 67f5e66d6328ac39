#pragma once

// libpq connection strings as node configs: `--node ID=CONNINFO` on the
// command line. CONNINFO is a keyword/value string ("host=db1 port=5432
// dbname=app") or a URI ("postgresql://user@db1:5432/app?sslmode=require"),
// parsed by libpq's own PQconninfoParse.
//
// Keywords that map onto node_config: host (or hostaddr), port, dbname,
// user, password, passfile, sslmode, sslrootcert, application_name,
// fallback_application_name. Accepted but ignored (pgcm sets them itself):
// client_encoding, connect_timeout, keepalives*, tcp_user_timeout. Any other
// keyword is refused: silently dropping e.g. `sslcert` would connect
// differently from what was asked.
//
// What the string leaves out comes from libpq's environment, as libpq does
// it: PGHOST, PGHOSTADDR, PGPORT, PGDATABASE, PGUSER, PGSSLMODE,
// PGSSLROOTCERT, PGAPPNAME; then libpq's defaults (the socket directory
// /var/run/postgresql, port 5432, the OS user name, database = user).
// PGPASSWORD and PGPASSFILE / ~/.pgpass are not read here: with no password
// in the string, libpq applies them itself when connecting.
//
// sslmode: disable, allow, prefer → TLS off; require → ssl.enabled,
// reject_unauthorized = false; verify-ca, verify-full → ssl.enabled,
// reject_unauthorized = true (pgcm always verifies the host name too, so
// verify-ca acts as verify-full), ssl.ca = sslrootcert or, as libpq,
// ~/.postgresql/root.crt.

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "password_source.hpp"
#include "pgcm/types.hpp"

namespace pgcm {

/// A connection string libpq rejects or pgcm cannot represent. The message
/// names the keyword; it never contains the password.
class conninfo_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// A node as a connection string describes it.
struct conninfo_node {
  /// Every field but the password.
  node_config config;
  /// `password=` (inline) or `passfile=`, or none.
  password_source password;
  /// Keywords accepted but ignored, with why (for a warning).
  std::vector<std::string> notes;
};

/// Parses `conninfo` (see above). Throws conninfo_error.
conninfo_node parse_conninfo(std::string_view conninfo, const env_lookup& env);

} // namespace pgcm
