// pgcm watch: the live status view of the configured nodes.

#include <algorithm>
#include <iostream>
#include <optional>

#include <pgcm/state_store.hpp>

#include "cli_logging.hpp"
#include "commands.hpp"
#include "event_log.hpp"
#include "live_view.hpp"
#include "manager_source.hpp"
#include "shutdown_signals.hpp"

namespace pgcm::cli {

namespace {

using namespace std::chrono;

/// Fast enough to catch every probe of a node in the latency history.
state_store_options store_options(const manager_options& m) {
  state_store_options o;
  o.refresh_interval =
      std::clamp(m.health_check_interval / 2, milliseconds{100}, milliseconds{1000});
  return o;
}

} // namespace

int run_watch(const cli_options& opts) {
  auto tail = setup_logging(opts, !opts.once);
  auto spec = load_cluster_spec(opts, process_env());
  for (auto& w : spec.warnings)
    std::cerr << "pgcm: warning: " << w << '\n';
  auto events = open_event_log(opts);
  auto mgr = make_manager(spec);
  std::optional<event_log_feed> feed;
  if (events) feed.emplace(*mgr, *events);
  stop_hook on_stop{[&mgr] { mgr->shutdown(); }};
  int rc = 0;
  {
    state_store store{*mgr, store_options(spec.options)};
    if (!opts.once) std::cerr << "pgcm: connecting to " << spec.nodes.size() << " nodes...\n";
    start_manager(*mgr, spec);
    live_view_options view;
    view.title = "pgcm watch";
    view.once = opts.once;
    view.color = opts.color;
    view.log = tail;
    view.slots_interval =
        std::clamp(spec.options.health_check_interval, milliseconds{1000}, milliseconds{5000});
    rc = run_live_view(*mgr, store, view);
  }
  if (feed && !mgr->is_remote()) {
    mgr->shutdown();
    feed->finish(milliseconds{2000}); // the node:removed events of the shutdown
  }
  feed.reset();
  end_log_capture(opts);
  return rc;
}

} // namespace pgcm::cli
