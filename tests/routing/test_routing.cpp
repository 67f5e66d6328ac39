// Replication-aware routing on a private cluster (node0 primary, node1 and
// node2 standbys): routes by target, lag from a paused replay, read your
// writes, a foreign node, promotion with the old primary stopped, split
// brain. Tests that change roles rebuild the cluster as they found it
// (pg-cluster rebuild-node) before they end.
#define BOOST_TEST_MODULE test_routing
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "../integration/fixture.hpp"

using namespace std::chrono_literals;
using namespace pgcm;
using pgcm::test::cluster;

namespace {

route to(target t) {
  route r;
  r.to = t;
  return r;
}

health_status health(const connection_manager& mgr, const std::string& node) {
  auto h = mgr.get_health(node);
  BOOST_REQUIRE_MESSAGE(h, "no health for " << node);
  return *h;
}

/// Every node healthy and its role known, node0 the primary.
void wait_cluster_ready(connection_manager& mgr) {
  BOOST_REQUIRE(test::eventually(
      [&] {
        for (auto& n : cluster::get().nodes()) {
          auto h = mgr.get_health(n);
          if (!h || h->status != health_state::healthy || h->timeline == 0) return false;
          if (h->role != (n == "node0" ? node_role::primary : node_role::standby)) return false;
          if (h->conflict) return false;
        }
        return true;
      },
      15s));
}

/// Restores node0 as the primary of node1 and node2 after a test promoted
/// `promoted` (node0 may be stopped or an old primary).
void restore_cluster(const std::string& promoted) {
  auto& c = cluster::get();
  c.rebuild_node("node0", promoted);
  c.promote("node0");
  for (auto& n : c.nodes())
    if (n != "node0") c.rebuild_node(n, "node0");
}

/// Replay paused on the given standbys for the scope; resumed at its end.
class paused_replay {
public:
  explicit paused_replay(std::vector<std::string> nodes) : nodes_(std::move(nodes)) {
    for (auto& n : nodes_)
      cluster::get().admin_sql(n, "SELECT pg_wal_replay_pause()");
  }
  ~paused_replay() { resume(); }
  void resume() {
    for (auto& n : nodes_)
      cluster::get().admin_sql(n, "SELECT pg_wal_replay_resume()");
    nodes_.clear();
  }

private:
  std::vector<std::string> nodes_;
};

std::map<std::string, std::string> read_env_file(const std::string& path) {
  std::map<std::string, std::string> out;
  std::ifstream in{path};
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

} // namespace

BOOST_AUTO_TEST_CASE(routes_follow_roles_and_answers_name_their_node) {
  auto log = std::make_shared<test::event_recorder>();
  connection_manager mgr{test::fast_options()};
  auto sub = mgr.on_any([log](const node_event& e) { (*log)(e); });
  mgr.initialize(test::all_nodes());
  wait_cluster_ready(mgr);

  auto h0 = health(mgr, "node0");
  auto h1 = health(mgr, "node1");
  BOOST_CHECK_NE(h0.system_identifier, 0u);
  BOOST_CHECK_EQUAL(h0.system_identifier, h1.system_identifier);
  BOOST_CHECK_EQUAL(h0.system_identifier, health(mgr, "node2").system_identifier);
  BOOST_CHECK(h0.wal_lsn.has_value());
  BOOST_CHECK(h1.wal_lsn.has_value());
  BOOST_CHECK_EQUAL(h0.timeline, h1.timeline);
  BOOST_CHECK(!h0.conflict && !h1.conflict);
  // The first known role of each node was published.
  for (auto& n : cluster::get().nodes())
    BOOST_CHECK(test::eventually([&] { return log->count(n, event::node_role) >= 1u; }, 5s));

  for (int i = 0; i < 5; ++i) {
    auto rs = mgr.query(to(target::primary), "SELECT pg_is_in_recovery() AS r");
    BOOST_CHECK_EQUAL(rs.node_id(), "node0");
    BOOST_CHECK(!rs[0].get<bool>("r"));
  }
  std::set<std::string> standbys;
  for (int i = 0; i < 12; ++i) {
    auto rs = mgr.query(to(target::standby), "SELECT pg_is_in_recovery() AS r");
    BOOST_CHECK(rs[0].get<bool>("r"));
    standbys.insert(rs.node_id());
  }
  BOOST_CHECK(standbys == (std::set<std::string>{"node1", "node2"}));
  BOOST_CHECK_NE(mgr.query(to(target::prefer_standby), "SELECT 1").node_id(), "node0");
  std::set<std::string> any;
  for (int i = 0; i < 30; ++i)
    any.insert(mgr.query(to(target::any), "SELECT 1").node_id());
  BOOST_CHECK_GE(any.size(), 2u);
  // Explicit queries name their node too.
  BOOST_CHECK_EQUAL(mgr.query("node2", "SELECT 1").node_id(), "node2");
  // A write to a standby-only route is refused by the server, not by pgcm.
  try {
    mgr.query(to(target::standby), "CREATE TABLE not_here(x int)");
    BOOST_ERROR("a standby accepted a write");
  } catch (const error& e) {
    BOOST_CHECK(e.sqlstate() == std::optional<std::string>{"25006"});
  }
}

BOOST_AUTO_TEST_CASE(an_idle_primary_does_not_make_caught_up_standbys_lag) {
  connection_manager mgr{test::fast_options()};
  mgr.initialize(test::all_nodes());
  wait_cluster_ready(mgr);
  mgr.query("node0", "CREATE TABLE IF NOT EXISTS idle_t(x int)");
  mgr.query("node0", "INSERT INTO idle_t VALUES (1)");
  // Nothing written for a while: the last replayed commit ages, the lag does not.
  std::this_thread::sleep_for(2s);
  BOOST_CHECK(test::eventually(
      [&] {
        auto h = health(mgr, "node1");
        return h.lag_bytes == std::optional<std::int64_t>{0} && h.lag == std::optional{0ms};
      },
      5s));
  route fresh = to(target::standby);
  fresh.max_lag = 100ms;
  fresh.max_lag_bytes = 0;
  BOOST_CHECK_NE(mgr.query(fresh, "SELECT 1").node_id(), "node0");
}

/// Every node's last probe time.
static std::map<std::string, std::chrono::system_clock::time_point>
last_checks(const connection_manager& mgr) {
  std::map<std::string, std::chrono::system_clock::time_point> out;
  for (auto& n : cluster::get().nodes())
    out[n] = health(mgr, n).last_check;
  return out;
}

/// Whether every node was probed again since `before`.
static bool
all_probed_since(const connection_manager& mgr,
                 const std::map<std::string, std::chrono::system_clock::time_point>& before) {
  for (auto& [n, t] : before) {
    auto h = mgr.get_health(n);
    if (!h || h->last_check <= t) return false;
  }
  return true;
}

BOOST_AUTO_TEST_CASE(signs_of_a_failover_probe_every_node_at_once) {
  // Issue 10: a write answered 25006 or sessions ended by the server on the
  // node believed primary trigger a probe of every node, not the next
  // interval (30 s here).
  auto opts = test::fast_options();
  opts.health_check_interval = 30s;
  connection_manager mgr{opts};
  mgr.initialize(test::all_nodes());
  wait_cluster_ready(mgr);

  // A write refused as read-only (this session's transaction is read-only:
  // what a demoted primary answers).
  auto before = last_checks(mgr);
  std::this_thread::sleep_for(50ms);
  try {
    mgr.query("node0", "DO $$BEGIN SET LOCAL transaction_read_only = on; "
                       "CREATE TABLE pgcm_never_created(i int); END$$");
    BOOST_ERROR("a write in a read-only transaction succeeded");
  } catch (const error& e) {
    BOOST_CHECK_EQUAL(e.sqlstate().value_or("none"), "25006");
  }
  auto start = std::chrono::steady_clock::now();
  BOOST_CHECK(test::eventually([&] { return all_probed_since(mgr, before); }, 5s));
  BOOST_TEST_MESSAGE("probe round after 25006: " << test::ms_since(start) << " ms");

  // The primary's sessions terminated (as a shutdown or a demotion does).
  wait_cluster_ready(mgr);
  std::this_thread::sleep_for(2s); // past the round's coalescing window
  before = last_checks(mgr);
  std::this_thread::sleep_for(50ms);
  cluster::get().admin_sql("node0", "SELECT count(pg_terminate_backend(pid)) FROM "
                                    "pg_stat_activity WHERE application_name = '" +
                                        test::app_name() + "' AND backend_type = 'client backend'");
  start = std::chrono::steady_clock::now();
  // Retried on a fresh connection: the terminated one never ran it.
  BOOST_CHECK_EQUAL(mgr.query("node0", "SELECT 1 AS n")[0].get<int>(0), 1);
  BOOST_CHECK(test::eventually([&] { return all_probed_since(mgr, before); }, 5s));
  BOOST_TEST_MESSAGE("probe round after 57P01: " << test::ms_since(start) << " ms");
  wait_cluster_ready(mgr);
}

BOOST_AUTO_TEST_CASE(a_paused_replica_leaves_bounded_routes_and_comes_back) {
  connection_manager mgr{test::fast_options()};
  mgr.initialize(test::all_nodes());
  wait_cluster_ready(mgr);
  mgr.query("node0", "CREATE TABLE IF NOT EXISTS lag_t(x int, pad text)");
  route bounded = to(target::standby);
  bounded.max_lag_bytes = 64 * 1024;
  route timed = to(target::standby);
  timed.max_lag = 500ms;
  {
    paused_replay pause{{"node1"}};
    mgr.query("node0",
              "INSERT INTO lag_t SELECT g, repeat('x', 100) FROM generate_series(1, 5000) g");
    // node1 falls behind; node2 may look behind too until its next probe
    // (primary and standby are sampled up to one interval apart).
    BOOST_REQUIRE(test::eventually(
        [&] {
          auto h1 = health(mgr, "node1");
          auto h2 = health(mgr, "node2");
          return h1.lag_bytes && *h1.lag_bytes > 64 * 1024 && h2.lag_bytes &&
                 *h2.lag_bytes <= 64 * 1024;
        },
        10s));
    for (int i = 0; i < 10; ++i)
      BOOST_CHECK_EQUAL(mgr.query(bounded, "SELECT 1").node_id(), "node2");
    // In time too, once it has been behind for longer than the bound.
    BOOST_REQUIRE(test::eventually([&] { return health(mgr, "node1").lag > 500ms; }, 10s));
    for (int i = 0; i < 10; ++i)
      BOOST_CHECK_EQUAL(mgr.query(timed, "SELECT 1").node_id(), "node2");
  }
  BOOST_REQUIRE(test::eventually(
      [&] { return health(mgr, "node1").lag_bytes == std::optional<std::int64_t>{0}; }, 10s));
  std::set<std::string> seen;
  for (int i = 0; i < 12; ++i)
    seen.insert(mgr.query(bounded, "SELECT 1").node_id());
  BOOST_CHECK(seen.count("node1") == 1);
}

BOOST_AUTO_TEST_CASE(read_your_writes_never_reads_a_stale_standby) {
  connection_manager mgr{test::fast_options()};
  mgr.initialize(test::all_nodes());
  wait_cluster_ready(mgr);
  mgr.query("node0", "DROP TABLE IF EXISTS ryw_t");
  mgr.query("node0",
            "CREATE TABLE ryw_t(x int)"); // fresh: the test may run again on the same cluster
  BOOST_REQUIRE(test::eventually([&] {
    return mgr.query(to(target::standby), "SELECT to_regclass('ryw_t') IS NOT NULL AS ok")[0]
        .get<bool>("ok");
  }));
  paused_replay pause{{"node1", "node2"}};
  route w = to(target::primary);
  w.want_lsn = true;
  auto written = mgr.query(w, "INSERT INTO ryw_t VALUES (42)");
  BOOST_CHECK_EQUAL(written.node_id(), "node0");
  BOOST_REQUIRE(written.commit_lsn().has_value());
  auto token = *written.commit_lsn();
  BOOST_CHECK_EQUAL(lsn::parse(token.to_string()).value, token.value);
  // A plain (not want_lsn) answer carries no position.
  BOOST_CHECK(!mgr.query(to(target::primary), "SELECT 1").commit_lsn());

  route read = to(target::standby);
  read.after = token;
  try {
    mgr.query(read, "SELECT count(*) FROM ryw_t WHERE x = 42");
    BOOST_ERROR("a standby that has not replayed the write was used");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::no_eligible_node);
    BOOST_CHECK_MESSAGE(std::string{e.what()}.find("node1: replayed") != std::string::npos,
                        e.what());
  }
  for (auto t : {target::prefer_standby, target::any}) {
    read.to = t;
    auto rs = mgr.query(read, "SELECT count(*) AS n FROM ryw_t WHERE x = 42");
    BOOST_CHECK_EQUAL(rs.node_id(), "node0");
    BOOST_CHECK_EQUAL(rs[0].get<int>("n"), 1);
  }
  pause.resume();
  read.to = target::standby;
  // Once replayed, the standbys serve it, and never without the row.
  std::set<std::string> served;
  BOOST_CHECK(test::eventually(
      [&] {
        try {
          auto rs = mgr.query(read, "SELECT count(*) AS n FROM ryw_t WHERE x = 42");
          BOOST_REQUIRE_EQUAL(rs[0].get<int>("n"), 1);
          served.insert(rs.node_id());
          return served.size() == 2;
        } catch (const error& e) {
          BOOST_REQUIRE(e.code() == errc::no_eligible_node);
          return false;
        }
      },
      10s));
}

BOOST_AUTO_TEST_CASE(a_node_of_another_cluster_is_in_conflict_from_its_first_probe) {
  auto& c = cluster::get();
  auto dir = c.value("PGCM_TEST_CLUSTER_DIR") + "-foreign";
  auto script = c.value("PGCM_TEST_SCRIPT");
  BOOST_REQUIRE_EQUAL(
      std::system((script + " start '" + dir + "' --replicas 0 >/dev/null").c_str()), 0);
  struct stop_foreign {
    std::string cmd;
    ~stop_foreign() { (void)std::system(cmd.c_str()); }
  } stop{script + " stop '" + dir + "' >/dev/null 2>&1"};
  auto env = read_env_file(dir + "/cluster.env");
  node_config foreign;
  foreign.host = env["PGCM_TEST_HOST"];
  foreign.port = static_cast<std::uint16_t>(std::stoi(env["PGCM_TEST_PORT_node0"]));
  foreign.database = env["PGCM_TEST_DB"];
  foreign.user = env["PGCM_TEST_USER"];
  foreign.password = env["PGCM_TEST_PASSWORD"];
  foreign.application_name = test::app_name();

  auto log = std::make_shared<test::event_recorder>();
  connection_manager mgr{test::fast_options()};
  auto sub = mgr.on_any([log](const node_event& e) { (*log)(e); });
  mgr.initialize(test::all_nodes());
  wait_cluster_ready(mgr);
  mgr.add_node("foreign", foreign);
  BOOST_REQUIRE(test::eventually([&] { return health(mgr, "foreign").conflict.has_value(); }));
  BOOST_CHECK(health(mgr, "foreign").conflict->find("system identifier") != std::string::npos);
  // Never reported healthy without its conflict.
  for (auto& h : log->health("foreign"))
    if (h.status == health_state::healthy)
      BOOST_CHECK_MESSAGE(h.conflict.has_value(), "foreign reported healthy without a conflict");
  // The event comes through the facade's dispatcher thread, maybe a moment later.
  BOOST_CHECK(test::eventually([&] { return log->count("foreign", event::node_role) >= 1u; }, 5s));
  // The cluster's primary is unaffected; no routed query goes to the foreign node.
  BOOST_CHECK(!health(mgr, "node0").conflict);
  for (int i = 0; i < 12; ++i) {
    BOOST_CHECK_NE(mgr.query(to(target::any), "SELECT 1").node_id(), "foreign");
    BOOST_CHECK_EQUAL(mgr.query(to(target::primary), "SELECT 1").node_id(), "node0");
  }
  // Operators can still look at it.
  BOOST_CHECK_EQUAL(mgr.query("foreign", "SELECT 7 AS n")[0].get<int>("n"), 7);
  mgr.remove_node("foreign");
}

BOOST_AUTO_TEST_CASE(writes_move_to_a_promoted_standby_and_never_reach_a_standby) {
  auto opts = test::fast_options();
  opts.primary_wait = 10s;
  connection_manager mgr{opts};
  mgr.initialize(test::all_nodes());
  wait_cluster_ready(mgr);
  mgr.query("node0", "CREATE TABLE IF NOT EXISTS failover_t(x int)");
  BOOST_REQUIRE(test::eventually([&] {
    return mgr.query("node1", "SELECT to_regclass('failover_t') IS NOT NULL AS ok")[0].get<bool>(
        "ok");
  }));
  auto& c = cluster::get();
  c.stop_node("node0", "immediate");
  BOOST_REQUIRE(test::eventually(
      [&] { return health(mgr, "node0").status == health_state::unhealthy; }, 10s));
  // No primary now: a write waits (primary_wait) instead of failing or
  // going to a standby.
  auto waiting = std::async(std::launch::async, [&] {
    return mgr.query(to(target::primary), "INSERT INTO failover_t VALUES (1)").node_id();
  });
  BOOST_CHECK(waiting.wait_for(500ms) == std::future_status::timeout);
  c.promote("node1");
  auto promoted_at = std::chrono::steady_clock::now();
  BOOST_REQUIRE(waiting.wait_for(5s) == std::future_status::ready);
  BOOST_CHECK_EQUAL(waiting.get(), "node1");
  // Within one probe interval (200 ms) plus 1 s.
  BOOST_CHECK_LE(test::ms_since(promoted_at), 1200);
  for (int i = 0; i < 5; ++i)
    BOOST_CHECK_EQUAL(mgr.query(to(target::primary), "INSERT INTO failover_t VALUES (2)").node_id(),
                      "node1");
  // The old primary comes back on the old timeline: in conflict, no writes.
  c.start_node("node0");
  BOOST_REQUIRE(test::eventually([&] {
    auto h = health(mgr, "node0");
    return h.status == health_state::healthy && h.conflict.has_value();
  }));
  BOOST_CHECK(health(mgr, "node0").conflict->find("split brain") != std::string::npos);
  for (int i = 0; i < 5; ++i)
    BOOST_CHECK_EQUAL(mgr.query(to(target::primary), "SELECT 1").node_id(), "node1");
  BOOST_CHECK_GT(health(mgr, "node1").timeline, health(mgr, "node0").timeline);
  mgr.shutdown();
  restore_cluster("node1");
}

BOOST_AUTO_TEST_CASE(split_brain_a_replica_promoted_while_the_primary_runs) {
  auto log = std::make_shared<test::event_recorder>();
  connection_manager mgr{test::fast_options()};
  auto sub = mgr.on(event::node_role, [log](const node_event& e) { (*log)(e); });
  mgr.initialize(test::all_nodes());
  wait_cluster_ready(mgr);
  auto roles_before = log->count("node0", event::node_role);
  cluster::get().promote("node2");
  // The newly promoted node is on the higher timeline: it takes the writes;
  // the old primary is kept out of routing.
  BOOST_REQUIRE(test::eventually([&] {
    auto h = health(mgr, "node0");
    return h.conflict.has_value() && health(mgr, "node2").role == node_role::primary;
  }));
  for (int i = 0; i < 5; ++i)
    BOOST_CHECK_EQUAL(mgr.query(to(target::primary), "SELECT 1").node_id(), "node2");
  for (int i = 0; i < 10; ++i)
    BOOST_CHECK_NE(mgr.query(to(target::any), "SELECT 1").node_id(), "node0");
  BOOST_CHECK(
      test::eventually([&] { return log->count("node0", event::node_role) > roles_before; }, 5s));
  // Explicit queries still reach the node in conflict.
  BOOST_CHECK_EQUAL(mgr.query("node0", "SELECT 1").node_id(), "node0");
  mgr.shutdown();
  restore_cluster("node2");
}
