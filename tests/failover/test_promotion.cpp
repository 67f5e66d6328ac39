// Failover on a private cluster (a promotion cannot be undone): the manager
// re-detects a promoted standby as primary, and the old primary, once
// stopped, turns unhealthy.
#define BOOST_TEST_MODULE test_promotion
#include <boost/test/unit_test.hpp>

#include <memory>

#include "../integration/fixture.hpp"

using namespace std::chrono_literals;
using namespace pgcm;
using pgcm::test::cluster;
using strings = std::vector<std::string>;

namespace {

std::string describe(const std::vector<health_status>& hs) {
  std::string out;
  for (auto& h : hs)
    out += (out.empty() ? "" : ", ") + to_string(h.status) + "/" + to_string(h.role) +
           (h.last_error ? " (" + *h.last_error + ")" : "");
  return out;
}

node_role role_of(const connection_manager& mgr, const std::string& node) {
  auto h = mgr.get_health(node);
  return h ? h->role : node_role::unknown;
}

} // namespace

BOOST_AUTO_TEST_CASE(promoted_standby_becomes_primary_and_stopped_primary_unhealthy) {
  auto log = std::make_shared<test::event_recorder>();
  connection_manager mgr{test::fast_options()};
  auto sub = mgr.on(event::node_health, [log](const node_event& e) { (*log)(e); });
  mgr.initialize(test::all_nodes());
  // initialize() returns once every node was probed once; a first probe
  // that timed out under load leaves the role unknown until the next one.
  auto roles_known = [&] {
    return role_of(mgr, "node0") == node_role::primary &&
           role_of(mgr, "node1") == node_role::standby &&
           role_of(mgr, "node2") == node_role::standby;
  };
  BOOST_REQUIRE_MESSAGE(
      test::eventually(roles_known, 5s),
      "node0..2: " << describe(
          {*mgr.get_health("node0"), *mgr.get_health("node1"), *mgr.get_health("node2")}));
  BOOST_REQUIRE(test::eventually(
      [&] {
        auto hs = log->health("node1");
        return !hs.empty() && hs.back().status == health_state::healthy &&
               hs.back().role == node_role::standby;
      },
      5s));
  // Events before node1 was first seen healthy (a first probe that failed).
  auto seen_before = log->health("node1").size() - 1;

  // Promote node1: the next probes see pg_is_in_recovery() = false.
  cluster::get().promote("node1");
  BOOST_REQUIRE(test::eventually([&] { return role_of(mgr, "node1") == node_role::primary; }, 10s));
  BOOST_CHECK(mgr.get_health("node1")->status == health_state::healthy);
  // The role change was published: healthy/standby, then healthy/primary.
  BOOST_REQUIRE(
      test::eventually([&] { return log->health("node1").size() >= seen_before + 2; }, 5s));
  auto events = log->health("node1");
  events.erase(events.begin(), events.begin() + static_cast<std::ptrdiff_t>(seen_before));
  BOOST_CHECK_MESSAGE(events.size() == 2, "node1: " << describe(events));
  BOOST_CHECK(events.front().role == node_role::standby);
  BOOST_CHECK(events.front().status == health_state::healthy);
  BOOST_CHECK(events.back().role == node_role::primary);
  BOOST_CHECK(events.back().status == health_state::healthy);
  // The pool's connections to node1 now reach a primary: writes work.
  BOOST_CHECK(!mgr.query("node1", "SELECT pg_is_in_recovery()")[0].get<bool>(0));
  mgr.query("node1", "CREATE TABLE IF NOT EXISTS promoted_t(x int)");
  BOOST_CHECK_EQUAL(mgr.query("node1", "INSERT INTO promoted_t VALUES (1), (2)").affected_rows(),
                    2);
  // node2 still replays (the old timeline): still a standby.
  BOOST_CHECK(role_of(mgr, "node2") == node_role::standby);
  BOOST_CHECK(role_of(mgr, "node0") == node_role::primary);

  {
    test::stopped_node down{"node0"};
    BOOST_REQUIRE(test::eventually(
        [&] {
          auto h = mgr.get_health("node0");
          return h && h->status == health_state::unhealthy;
        },
        10s));
    auto h = mgr.get_health("node0");
    BOOST_CHECK_GE(h->consecutive_failures, mgr.options().unhealthy_threshold);
    BOOST_CHECK(h->last_error.has_value());
    BOOST_REQUIRE(test::eventually(
        [&] {
          auto hs = log->health("node0");
          return !hs.empty() && hs.back().status == health_state::unhealthy;
        },
        5s));
    auto node0_events = log->health("node0");
    BOOST_CHECK_MESSAGE(node0_events.size() == 2, "node0: " << describe(node0_events));
    // The new primary serves; the healthy set and fan-outs leave node0 out.
    std::vector<std::string> healthy;
    for (auto& n : mgr.get_healthy_nodes())
      healthy.push_back(n.id);
    BOOST_CHECK(healthy == (strings{"node1", "node2"}));
    auto results = mgr.query_healthy("SELECT pg_is_in_recovery() AS r", {}, 5s);
    BOOST_REQUIRE_EQUAL(results.size(), 2u);
    BOOST_CHECK_EQUAL(results[0].node_id, "node1");
    BOOST_REQUIRE(results[0].success);
    BOOST_CHECK(!results[0].data[0].get<bool>("r"));
    auto all = mgr.query_all("SELECT 1", {}, 5s);
    BOOST_REQUIRE_EQUAL(all.size(), 3u);
    BOOST_CHECK(!all[0].success);
    BOOST_CHECK(all[0].error && all[0].error->code == errc::connection_failed);
    BOOST_CHECK(all[1].success && all[2].success);
    BOOST_CHECK_EQUAL(mgr.query("node1", "SELECT count(*) FROM promoted_t")[0].get<int64_t>(0), 2);
  }
}
