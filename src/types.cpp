#include "pgcm/types.hpp"

#include <cstdlib>
#include <string_view>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pgcm {

std::string to_string(errc x) {
  switch (x) {
  case errc::node_not_found:
    return "node_not_found";
  case errc::duplicate_node:
    return "duplicate_node";
  case errc::invalid_config:
    return "invalid_config";
  case errc::connection_failed:
    return "connection_failed";
  case errc::query_failed:
    return "query_failed";
  case errc::query_timeout:
    return "query_timeout";
  case errc::pool_exhausted:
    return "pool_exhausted";
  case errc::shutting_down:
    return "shutting_down";
  case errc::conversion_failed:
    return "conversion_failed";
  case errc::column_not_found:
    return "column_not_found";
  case errc::invalid_argument:
    return "invalid_argument";
  case errc::remote_disconnected:
    return "remote_disconnected";
  case errc::protocol_mismatch:
    return "protocol_mismatch";
  case errc::internal:
    return "internal";
  case errc::no_eligible_node:
    return "no_eligible_node";
  case errc::split_brain:
    return "split_brain";
  }
  return "unknown_error";
}

std::string to_string(health_state x) {
  switch (x) {
  case health_state::unknown:
    return "unknown";
  case health_state::healthy:
    return "healthy";
  case health_state::unhealthy:
    return "unhealthy";
  }
  return "?";
}

std::string to_string(node_role x) {
  switch (x) {
  case node_role::unknown:
    return "unknown";
  case node_role::primary:
    return "primary";
  case node_role::standby:
    return "standby";
  }
  return "?";
}

std::string to_string(event x) {
  switch (x) {
  case event::node_connected:
    return "node:connected";
  case event::node_disconnected:
    return "node:disconnected";
  case event::node_health:
    return "node:health";
  case event::node_added:
    return "node:added";
  case event::node_removed:
    return "node:removed";
  case event::pool_stats:
    return "pool:stats";
  case event::node_role:
    return "node:role";
  }
  return "?";
}

bool operator==(const health_status& x, const health_status& y) {
  return x.status == y.status && x.latency == y.latency &&
         x.consecutive_failures == y.consecutive_failures && x.last_error == y.last_error &&
         x.last_check == y.last_check && x.role == y.role && x.timeline == y.timeline &&
         x.system_identifier == y.system_identifier && x.wal_lsn == y.wal_lsn &&
         x.receive_lsn == y.receive_lsn && x.lag_bytes == y.lag_bytes && x.lag == y.lag &&
         x.conflict == y.conflict;
}

bool operator==(const pool_stats& x, const pool_stats& y) {
#define PGCM_X(name) &&x.name == y.name
#define PGCM_XB(name, bound_us) &&x.name == y.name
  return x.node_id == y.node_id PGCM_POOL_GAUGES(PGCM_X) PGCM_POOL_COUNTERS(PGCM_X)
                          PGCM_QUERY_DURATION_BUCKETS(PGCM_XB);
#undef PGCM_XB
#undef PGCM_X
}

node_config redacted(node_config cfg) {
  cfg.password.reset();
  return cfg;
}

std::string describe(const node_config& cfg) {
  std::string out = cfg.user + "@" + cfg.host + ":" + std::to_string(cfg.port) + "/" + cfg.database;
  if (cfg.ssl.enabled) out += cfg.ssl.reject_unauthorized ? " ssl=verify-full" : " ssl=require";
  out += " pool=" + std::to_string(cfg.pool.min) + ".." + std::to_string(cfg.pool.max);
  return out;
}

namespace {

error_info bad(const std::string& node_id, const std::string& field, const std::string& why) {
  return error_info{errc::invalid_config,
                    "invalid config for node \"" + node_id + "\": " + field + " " + why,
                    std::nullopt};
}

error_info bad_option(const std::string& field, const std::string& why) {
  return error_info{errc::invalid_config, "invalid manager option: " + field + " " + why,
                    std::nullopt};
}

bool has_nul(const std::string& s) {
  return s.find('\0') != std::string::npos;
}

} // namespace

std::optional<error_info> validate(const std::string& node_id, const node_config& cfg) {
  if (node_id.empty())
    return error_info{errc::invalid_config, "invalid config: node id must not be empty",
                      std::nullopt};
  if (cfg.host.empty()) return bad(node_id, "host", "must not be empty");
  if (cfg.port == 0) return bad(node_id, "port", "must be between 1 and 65535 (got 0)");
  if (cfg.database.empty()) return bad(node_id, "database", "must not be empty");
  if (cfg.user.empty()) return bad(node_id, "user", "must not be empty");
  for (auto* field : {&cfg.host, &cfg.database, &cfg.user, &cfg.application_name})
    if (has_nul(*field))
      return bad(node_id, "host/database/user/application_name", "must not contain NUL bytes");
  if (cfg.password && has_nul(*cfg.password))
    return bad(node_id, "password", "must not contain NUL bytes");
  if (cfg.pool.min < 0)
    return bad(node_id, "pool.min", "must be >= 0 (got " + std::to_string(cfg.pool.min) + ")");
  if (cfg.pool.max < 1)
    return bad(node_id, "pool.max", "must be >= 1 (got " + std::to_string(cfg.pool.max) + ")");
  if (cfg.pool.min > cfg.pool.max)
    return bad(node_id, "pool.min",
               "must not exceed pool.max (" + std::to_string(cfg.pool.min) + " > " +
                   std::to_string(cfg.pool.max) + ")");
  if (cfg.pool.pipeline_depth < 1)
    return bad(node_id, "pool.pipeline_depth",
               "must be >= 1 (got " + std::to_string(cfg.pool.pipeline_depth) + ")");
  if (cfg.pool.max_waiting < 0) return bad(node_id, "pool.max_waiting", "must be >= 0");
  if (cfg.pool.statement_cache < 0) return bad(node_id, "pool.statement_cache", "must be >= 0");
  if (cfg.ssl.enabled && cfg.ssl.reject_unauthorized && cfg.ssl.ca.empty())
    return bad(node_id, "ssl.ca",
               "is required when ssl.enabled and ssl.reject_unauthorized are set");
  if (cfg.ssl.enabled && !cfg.ssl.ca.empty()) {
    // O_NONBLOCK: a FIFO or device must not block validation.
    int fd = ::open(cfg.ssl.ca.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat sb {};
    bool regular = fd >= 0 && ::fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode);
    if (fd >= 0) ::close(fd);
    if (!regular) return bad(node_id, "ssl.ca", "file \"" + cfg.ssl.ca + "\" cannot be read");
  }
  return std::nullopt;
}

namespace {

/// PGCM_INLINE: unset, empty, "0" or "1".
const char* inline_env() {
  const char* env = std::getenv("PGCM_INLINE");
  return env != nullptr && *env != '\0' ? env : nullptr;
}

} // namespace

bool manager_options::effective_inline_execution() const {
  const char* env = inline_env();
  return inline_execution && !(env != nullptr && std::string_view{env} == "0");
}

std::optional<error_info> validate(const manager_options& o) {
  if (const char* env = inline_env();
      env != nullptr && std::string_view{env} != "0" && std::string_view{env} != "1")
    return error_info{errc::invalid_config,
                      std::string{"PGCM_INLINE=\""} + env + "\" must be 0 or 1 (or unset)",
                      {}};
  if (o.health_check_interval.count() <= 0)
    return bad_option("health_check_interval", "must be > 0");
  if (o.unhealthy_threshold < 1) return bad_option("unhealthy_threshold", "must be >= 1");
  if (o.shutdown_timeout.count() < 0) return bad_option("shutdown_timeout", "must be >= 0");
  if (o.query_timeout.count() <= 0) return bad_option("query_timeout", "must be > 0");
  if (o.health_check_timeout.count() < 0) return bad_option("health_check_timeout", "must be >= 0");
  if (o.connect_timeout.count() <= 0) return bad_option("connect_timeout", "must be > 0");
  if (o.reconnect_backoff_initial.count() <= 0)
    return bad_option("reconnect_backoff_initial", "must be > 0");
  if (o.reconnect_backoff_max < o.reconnect_backoff_initial)
    return bad_option("reconnect_backoff_max", "must be >= reconnect_backoff_initial");
  if (o.healthy_threshold < 1) return bad_option("healthy_threshold", "must be >= 1");
  if (o.unhealthy_check_interval.count() <= 0)
    return bad_option("unhealthy_check_interval", "must be > 0");
  if (o.primary_wait.count() < 0) return bad_option("primary_wait", "must be >= 0");
  return std::nullopt;
}

} // namespace pgcm
