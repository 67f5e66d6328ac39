#include "conninfo.hpp"

#include <map>
#include <memory>
#include <optional>
#include <vector>

#include <libpq-fe.h>
#include <pwd.h>
#include <unistd.h>

namespace pgcm {

namespace {

// libpq's compiled-in defaults on Debian.
constexpr const char* default_socket_dir = "/var/run/postgresql";
constexpr std::uint16_t default_port = 5432;

/// Keywords pgcm accepts without using them, and why.
const std::map<std::string_view, const char*>& ignored_keywords() {
  static const std::map<std::string_view, const char*> m{
      {"client_encoding", "pgcm always uses UTF8"},
      {"connect_timeout", "pgcm uses the manager option connect_timeout"},
      {"keepalives", "pgcm sets TCP keepalives itself"},
      {"keepalives_idle", "pgcm sets TCP keepalives itself"},
      {"keepalives_interval", "pgcm sets TCP keepalives itself"},
      {"keepalives_count", "pgcm sets TCP keepalives itself"},
      {"tcp_user_timeout", "pgcm derives it from connect_timeout"},
  };
  return m;
}

bool mapped_keyword(std::string_view k) {
  for (auto* m : {"host", "hostaddr", "port", "dbname", "user", "password", "passfile", "sslmode",
                  "sslrootcert", "application_name", "fallback_application_name"})
    if (k == m) return true;
  return false;
}

std::string os_user() {
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<std::size_t>(size) : 16384);
  passwd pw{};
  passwd* result = nullptr;
  if (getpwuid_r(geteuid(), &pw, buf.data(), buf.size(), &result) == 0 && result != nullptr)
    return result->pw_name;
  return {};
}

struct options_deleter {
  void operator()(PQconninfoOption* p) const { PQconninfoFree(p); }
};

} // namespace

conninfo_node parse_conninfo(std::string_view conninfo, const env_lookup& env) {
  if (conninfo.find('\0') != std::string_view::npos)
    throw conninfo_error{"connection string contains a NUL byte"};
  std::string text{conninfo};
  char* errmsg = nullptr;
  std::unique_ptr<PQconninfoOption, options_deleter> opts{PQconninfoParse(text.c_str(), &errmsg)};
  if (!opts) {
    std::string msg = errmsg != nullptr ? errmsg : "out of memory";
    if (errmsg != nullptr) PQfreemem(errmsg);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
      msg.pop_back();
    // libpq's messages quote the offending keyword or URI part, never a
    // password value.
    throw conninfo_error{"invalid connection string: " + msg};
  }

  // Explicit values (empty counts as not given, as in libpq).
  std::map<std::string, std::string> given;
  conninfo_node out;
  for (auto* o = opts.get(); o->keyword != nullptr; ++o) {
    if (o->val == nullptr || o->val[0] == '\0') continue;
    std::string_view k = o->keyword;
    if (auto it = ignored_keywords().find(k); it != ignored_keywords().end()) {
      out.notes.push_back("ignoring " + std::string{k} + ": " + it->second);
      continue;
    }
    if (!mapped_keyword(k))
      throw conninfo_error{"connection keyword \"" + std::string{k} +
                           "\" is not supported by pgcm (supported: host, hostaddr, port, "
                           "dbname, user, password, passfile, sslmode, sslrootcert, "
                           "application_name)"};
    given.emplace(std::string{k}, o->val);
  }

  auto pick = [&](const char* keyword, const char* envvar) -> std::optional<std::string> {
    if (auto it = given.find(keyword); it != given.end()) return it->second;
    if (envvar != nullptr)
      if (auto v = env(envvar); v && !v->empty()) return v;
    return std::nullopt;
  };

  auto& c = out.config;
  auto host = pick("host", "PGHOST");
  auto hostaddr = pick("hostaddr", "PGHOSTADDR");
  if (host && hostaddr)
    throw conninfo_error{"hostaddr together with host is not supported (pgcm resolves host "
                         "itself); give only host"};
  c.host = host ? *host : hostaddr ? *hostaddr : default_socket_dir;
  if (c.host.find(',') != std::string::npos)
    throw conninfo_error{"several hosts in one connection string are not supported; give one "
                         "--node per host"};

  if (auto port = pick("port", "PGPORT")) {
    if (port->find(',') != std::string::npos)
      throw conninfo_error{"several ports in one connection string are not supported"};
    long n = 0;
    bool ok = !port->empty() && port->size() <= 5;
    for (char ch : *port) {
      ok = ok && ch >= '0' && ch <= '9';
      if (ok) n = n * 10 + (ch - '0');
    }
    if (!ok || n < 1 || n > 65535)
      throw conninfo_error{"invalid port \"" + *port + "\" (must be 1 to 65535)"};
    c.port = static_cast<std::uint16_t>(n);
  } else {
    c.port = default_port;
  }

  auto user = pick("user", "PGUSER");
  c.user = user ? *user : os_user();
  if (c.user.empty())
    throw conninfo_error{"no user given and the OS user name is unknown; set user="};
  auto db = pick("dbname", "PGDATABASE");
  c.database = db ? *db : c.user;

  if (auto app = pick("application_name", "PGAPPNAME"))
    c.application_name = *app;
  else if (auto fallback = pick("fallback_application_name", nullptr))
    c.application_name = *fallback;

  auto sslmode = pick("sslmode", "PGSSLMODE");
  auto rootcert = pick("sslrootcert", "PGSSLROOTCERT");
  std::string mode = sslmode.value_or("disable");
  if (mode == "disable" || mode == "allow" || mode == "prefer") {
    c.ssl.enabled = false;
    if (rootcert) c.ssl.ca = *rootcert;
  } else if (mode == "require") {
    c.ssl.enabled = true;
    c.ssl.reject_unauthorized = false;
    if (rootcert) c.ssl.ca = *rootcert;
  } else if (mode == "verify-ca" || mode == "verify-full") {
    c.ssl.enabled = true;
    c.ssl.reject_unauthorized = true;
    if (rootcert) {
      c.ssl.ca = *rootcert;
    } else if (auto home = env("HOME"); home && !home->empty()) {
      c.ssl.ca = *home + "/.postgresql/root.crt";
    } else {
      throw conninfo_error{"sslmode=" + mode + " needs sslrootcert"};
    }
    if (mode == "verify-ca")
      out.notes.push_back("sslmode=verify-ca: pgcm also verifies the host name (verify-full)");
  } else {
    throw conninfo_error{"invalid sslmode \"" + mode +
                         "\" (disable, allow, prefer, require, verify-ca, verify-full)"};
  }

  if (auto it = given.find("password"); it != given.end()) {
    out.password.type = password_source::kind::inline_value;
    out.password.value = it->second;
    if (given.count("passfile") != 0)
      out.notes.push_back("ignoring passfile: the connection string has a password");
  } else if (auto pf = given.find("passfile"); pf != given.end()) {
    out.password.type = password_source::kind::passfile;
    out.password.value = pf->second;
  }
  return out;
}

} // namespace pgcm
