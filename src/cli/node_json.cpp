#include "node_json.hpp"

#include "display_units.hpp"

namespace pgcm::cli {

void write_health_fields(json_writer& j, const health_status& h) {
  j.key("role").value(to_string(h.role));
  j.key("status").value(to_string(h.status));
  j.key("timeline").value(static_cast<std::int64_t>(h.timeline));
  j.key("system_identifier"); // a string: it does not fit a JSON number exactly
  if (h.system_identifier)
    j.value(std::to_string(h.system_identifier));
  else
    j.null();
  auto pos = [&](const char* key, const std::optional<lsn>& x) {
    j.key(key);
    if (x)
      j.value(x->to_string());
    else
      j.null();
  };
  pos("wal_lsn", h.wal_lsn);
  pos("receive_lsn", h.receive_lsn);
  j.key("lag_bytes");
  if (h.lag_bytes)
    j.value(*h.lag_bytes);
  else
    j.null();
  j.key("lag_ms");
  if (h.lag)
    j.value(static_cast<std::int64_t>(h.lag->count()));
  else
    j.null();
  j.key("conflict").value(h.conflict);
  j.key("latency_us").value(static_cast<std::int64_t>(h.latency.count()));
  j.key("consecutive_failures").value(static_cast<std::int64_t>(h.consecutive_failures));
  j.key("last_error").value(h.last_error);
  j.key("last_check");
  if (h.last_check == std::chrono::system_clock::time_point{})
    j.null();
  else
    j.value(format_utc(h.last_check));
}

void write_pool(json_writer& j, const pool_stats& p) {
  j.begin_object();
#define PGCM_X(name) j.key(#name).value(static_cast<std::int64_t>(p.name));
  PGCM_POOL_GAUGES(PGCM_X)
  PGCM_POOL_COUNTERS(PGCM_X)
#undef PGCM_X
#define PGCM_X(name, bound_us) j.key(#name).value(static_cast<std::int64_t>(p.name));
  PGCM_QUERY_DURATION_BUCKETS(PGCM_X)
#undef PGCM_X
  j.end_object();
}

void write_node(json_writer& j, const node_info& n) {
  j.begin_object();
  j.key("id").value(n.id);
  j.key("host").value(n.config.host);
  j.key("port").value(static_cast<std::int64_t>(n.config.port));
  j.key("database").value(n.config.database);
  j.key("user").value(n.config.user);
  j.key("pool_max").value(static_cast<std::int64_t>(n.config.pool.max));
  write_health_fields(j, n.health);
  j.key("pool");
  write_pool(j, n.pool);
  j.end_object();
}

std::string health_json(const std::vector<node_info>& nodes) {
  json_writer j;
  std::int64_t healthy = 0;
  j.begin_object().key("nodes").begin_array();
  for (auto& n : nodes) {
    if (n.health.status == health_state::healthy) ++healthy;
    write_node(j, n);
  }
  j.end_array();
  j.key("healthy").value(healthy);
  j.key("total").value(static_cast<std::int64_t>(nodes.size()));
  j.end_object();
  return j.str();
}

std::string event_json(const node_event& ev, std::chrono::system_clock::time_point at) {
  json_writer j;
  j.begin_object();
  j.key("time").value(format_utc(at));
  j.key("type").value(to_string(ev.type));
  j.key("node").value(ev.node_id);
  if (ev.health) {
    j.key("health").begin_object();
    write_health_fields(j, *ev.health);
    j.end_object();
  }
  if (ev.stats) {
    j.key("pool");
    write_pool(j, *ev.stats);
  }
  if (ev.error) {
    j.key("error").begin_object();
    j.key("code").value(to_string(ev.error->code));
    j.key("message").value(ev.error->message);
    j.key("sqlstate").value(ev.error->sqlstate);
    j.end_object();
  }
  j.end_object();
  return j.str();
}

} // namespace pgcm::cli
