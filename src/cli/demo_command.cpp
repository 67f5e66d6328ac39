// pgcm demo: a throwaway local cluster, a little traffic, the live view.

#include <atomic>
#include <iostream>
#include <thread>

#include <pgcm/state_store.hpp>

#include "cli_logging.hpp"
#include "commands.hpp"
#include "demo_cluster.hpp"
#include "live_view.hpp"
#include "manager_source.hpp"
#include "shutdown_signals.hpp"

namespace pgcm::cli {

namespace {

using namespace std::chrono;

/// Short intervals so the view moves.
manager_options demo_options() {
  manager_options o;
  o.health_check_interval = milliseconds{1000};
  o.unhealthy_threshold = 2;
  o.shutdown_timeout = milliseconds{5000};
  o.query_timeout = milliseconds{5000};
  o.connect_timeout = milliseconds{2000};
  return o;
}

/// A few clients running short queries on the healthy nodes, so the pool
/// gauges and counters move.
class demo_traffic {
public:
  explicit demo_traffic(connection_manager& mgr) {
    for (int i = 0; i < 3; ++i)
      threads_.emplace_back([this, &mgr, i] { run(mgr, i); });
  }
  ~demo_traffic() {
    stop_ = true;
    for (auto& t : threads_)
      t.join();
  }

private:
  void run(connection_manager& mgr, int i) {
    while (!stop_ && !stop_requested()) {
      try {
        mgr.query_healthy("SELECT pg_sleep($1::float8)", {0.01 * (i + 1)}, milliseconds{2000});
      } catch (const error&) {
        // nodes come and go; the view shows it
      }
      std::this_thread::sleep_for(milliseconds{40 + 30 * i});
    }
  }

  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

} // namespace

int run_demo(const cli_options& opts) {
  auto script = demo_cluster::find_script();
  demo_cluster cluster{script};
  // A second Ctrl-C exits at once but still stops the cluster (detached).
  set_emergency_command({script, "stop", cluster.dir()});
  std::cerr << "pgcm demo: starting a primary and 2 replicas in " << cluster.dir() << "\n";
  cluster.start();
  if (stop_requested()) {
    std::cerr << "pgcm demo: interrupted; stopping the cluster\n";
    cluster.stop();
    set_emergency_command({});
    return 1;
  }
  cluster_spec spec;
  spec.options = demo_options();
  spec.nodes = cluster.nodes();

  auto tail = setup_logging(opts, !opts.once);
  int rc = 0;
  {
    auto mgr = make_manager(spec);
    stop_hook on_stop{[&mgr] { mgr->shutdown(); }};
    state_store_options so;
    so.refresh_interval = milliseconds{500};
    state_store store{*mgr, so};
    start_manager(*mgr, spec);
    live_view_options view;
    view.title = "pgcm demo";
    view.once = opts.once;
    view.color = opts.color;
    view.log = tail;
    view.slots_interval = milliseconds{1000};
    view.once_wait = milliseconds{15000};
    if (opts.once) {
      rc = run_live_view(*mgr, store, view);
    } else {
      demo_traffic traffic{*mgr};
      rc = run_live_view(*mgr, store, view);
    }
    end_log_capture(opts);
    std::cerr << "pgcm demo: shutting down the manager\n";
  }
  std::cerr << "pgcm demo: stopping the cluster and removing " << cluster.dir() << "\n";
  cluster.stop();
  set_emergency_command({});
  return rc;
}

} // namespace pgcm::cli
