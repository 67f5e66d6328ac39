#include "password_source.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pgcm {

namespace {

// libpq's compiled-in defaults on Debian (DefaultHost, DEFAULT_PGSOCKET_DIR).
constexpr std::string_view default_host = "localhost";
constexpr std::string_view default_socket_dir = "/var/run/postgresql";
constexpr std::string_view default_port = "5432";
constexpr std::size_t max_passfile_size = 1 << 20;

constexpr auto npos = std::string_view::npos;

/// libpq's pwdfMatchesString: matches one field of `line` starting at `pos`
/// against `token`; returns the position after the field's ':' or npos.
std::size_t match_field(std::string_view line, std::size_t pos, std::string_view token) {
  if (pos == npos) return npos;
  if (line.substr(pos, 2) == "*:") return pos + 2;
  std::size_t t = 0;
  bool bslash = false;
  while (pos < line.size()) {
    if (line[pos] == '\\' && !bslash) {
      ++pos;
      bslash = true;
      if (pos >= line.size()) return npos;
    }
    if (line[pos] == ':' && t == token.size() && !bslash) return pos + 1;
    bslash = false;
    if (t == token.size() || line[pos] != token[t]) return npos;
    ++pos;
    ++t;
  }
  return npos;
}

} // namespace

env_lookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    if (const char* v = std::getenv(name.c_str())) return std::string{v};
    return std::nullopt;
  };
}

std::optional<std::string> passfile_lookup(std::string_view contents, std::string_view host,
                                           std::string_view port, std::string_view database,
                                           std::string_view user) {
  if (host.empty() || host == default_socket_dir) host = default_host;
  if (port.empty()) port = default_port;
  std::size_t start = 0;
  while (start < contents.size()) {
    auto end = contents.find('\n', start);
    if (end == npos) end = contents.size();
    auto line = contents.substr(start, end - start);
    start = end + 1;
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n'))
      line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    auto pos = match_field(line, 0, host);
    pos = match_field(line, pos, port);
    pos = match_field(line, pos, database);
    pos = match_field(line, pos, user);
    if (pos == npos) continue;
    std::string password;
    for (; pos < line.size() && line[pos] != ':'; ++pos) {
      if (line[pos] == '\\' && pos + 1 < line.size()) ++pos;
      password.push_back(line[pos]);
    }
    return password;
  }
  return std::nullopt;
}

std::optional<std::string> resolve_password(const password_source& src, const node_config& cfg,
                                            const env_lookup& env) {
  switch (src.type) {
  case password_source::kind::none:
    return std::nullopt;
  case password_source::kind::inline_value:
    return src.value;
  case password_source::kind::env: {
    auto v = env(src.value);
    if (!v) throw password_error{"environment variable " + src.value + " is not set"};
    if (v->empty()) throw password_error{"environment variable " + src.value + " is empty"};
    return v;
  }
  case password_source::kind::passfile:
    break;
  }
  const auto& path = src.value;
  auto cannot_read = [&path] {
    return password_error{"passfile \"" + path + "\" cannot be read: " + std::strerror(errno)};
  };
  // Non-blocking, and checked on the open file: a FIFO or a device named
  // here must not hang the caller.
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw cannot_read();
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw cannot_read();
  if (!S_ISREG(st.st_mode)) throw password_error{"passfile \"" + path + "\" is not a plain file"};
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    throw password_error{"passfile \"" + path +
                         "\" has group or world access; permissions should be u=rw (0600) "
                         "or less (libpq ignores such files)"};
  std::string contents;
  char chunk[4096];
  for (;;) {
    auto n = ::read(fd, chunk, sizeof(chunk));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw cannot_read();
    }
    contents.append(chunk, static_cast<std::size_t>(n));
    if (contents.size() > max_passfile_size)
      throw password_error{"passfile \"" + path + "\" is larger than 1 MiB"};
  }
  auto pw = passfile_lookup(contents, cfg.host, std::to_string(cfg.port), cfg.database, cfg.user);
  if (!pw)
    throw password_error{"passfile \"" + path + "\" has no line matching " + cfg.host + ":" +
                         std::to_string(cfg.port) + ":" + cfg.database + ":" + cfg.user};
  return pw;
}

} // namespace pgcm
