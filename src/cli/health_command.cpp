// pgcm health: one row per node.

#include <iostream>

#include "cli_logging.hpp"
#include "commands.hpp"
#include "display_units.hpp"
#include "manager_source.hpp"
#include "node_json.hpp"
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
  std::cout << health_json(nodes) << '\n';
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
