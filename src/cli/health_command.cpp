// pgcm health: one row per node.

#include <iostream>

#include "cli_logging.hpp"
#include "commands.hpp"
#include "display_units.hpp"
#include "json_writer.hpp"
#include "manager_source.hpp"
#include "shutdown_signals.hpp"
#include "text_table.hpp"

namespace pgcm::cli {

namespace {

void print_table(const std::vector<node_info>& nodes) {
  text_table t;
  t.headers = {"node",
               "role",
               "status",
               "timeline",
               "lag",
               "latency",
               "failures",
               "pool total",
               "idle",
               "waiting",
               "last error / conflict"};
  t.right_align = {false, false, false, true, true, true, true, true, true, true, false};
  for (auto& n : nodes) {
    auto& h = n.health;
    std::optional<std::string> note = h.last_error;
    if (h.conflict) note = "conflict: " + *h.conflict + (note ? "; " + *note : "");
    t.rows.push_back(
        {n.id, to_string(h.role), to_string(h.status),
         h.timeline ? std::to_string(h.timeline) : "-", format_lag(h), format_latency(h.latency),
         std::to_string(h.consecutive_failures), std::to_string(n.pool.total_connections),
         std::to_string(n.pool.idle_connections), std::to_string(n.pool.waiting_requests), note});
  }
  std::cout << render(t);
}

void print_json(const std::vector<node_info>& nodes) {
  json_writer j;
  std::int64_t healthy = 0;
  j.begin_object().key("nodes").begin_array();
  for (auto& n : nodes) {
    auto& h = n.health;
    if (h.status == health_state::healthy) ++healthy;
    j.begin_object();
    j.key("id").value(n.id);
    j.key("host").value(n.config.host);
    j.key("port").value(static_cast<std::int64_t>(n.config.port));
    j.key("database").value(n.config.database);
    j.key("user").value(n.config.user);
    j.key("role").value(to_string(h.role));
    j.key("status").value(to_string(h.status));
    j.key("timeline").value(static_cast<std::int64_t>(h.timeline));
    j.key("system_identifier");
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
    j.key("pool").begin_object();
#define PGCM_X(name) j.key(#name).value(static_cast<std::int64_t>(n.pool.name));
    PGCM_POOL_GAUGES(PGCM_X)
    PGCM_POOL_COUNTERS(PGCM_X)
#undef PGCM_X
    j.end_object();
    j.end_object();
  }
  j.end_array();
  j.key("healthy").value(healthy);
  j.key("total").value(static_cast<std::int64_t>(nodes.size()));
  j.end_object();
  std::cout << j.str() << '\n';
}

} // namespace

int run_health(const cli_options& opts) {
  setup_logging(opts, false);
  auto spec = load_cluster_spec(opts, process_env());
  for (auto& w : spec.warnings)
    std::cerr << "pgcm: warning: " << w << '\n';
  auto mgr = make_manager(spec);
  stop_hook on_stop{[&mgr] { mgr->shutdown(); }};
  start_manager(*mgr, spec);
  auto nodes = mgr->get_nodes();
  if (opts.json)
    print_json(nodes);
  else
    print_table(nodes);
  for (auto& n : nodes)
    if (n.health.status != health_state::healthy) return 1;
  return 0;
}

} // namespace pgcm::cli
