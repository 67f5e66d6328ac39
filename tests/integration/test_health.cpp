// Health probing on a real cluster: role detection, latency, transitions of a
// stopped and restarted node with their events in order, connection events,
// the healthy-node list, and fan-outs while a node is down.
#define BOOST_TEST_MODULE test_health
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <memory>

#include "fixture.hpp"

using namespace std::chrono_literals;
using namespace pgcm;

namespace {

std::string states_str(const std::vector<health_state>& xs) {
  std::string out;
  for (auto x : xs)
    out += (out.empty() ? "" : ",") + to_string(x);
  return out;
}

std::vector<std::string> ids(const std::vector<node_info>& nodes) {
  std::vector<std::string> out;
  for (auto& n : nodes)
    out.push_back(n.id);
  return out;
}

template <class Result> std::vector<std::string> ids(const std::vector<Result>& results) {
  std::vector<std::string> out;
  for (auto& r : results)
    out.push_back(r.node_id);
  return out;
}

bool is_healthy(const connection_manager& mgr, const std::string& node) {
  auto h = mgr.get_health(node);
  return h && h->status == health_state::healthy;
}

bool is_unhealthy(const connection_manager& mgr, const std::string& node) {
  auto h = mgr.get_health(node);
  return h && h->status == health_state::unhealthy;
}

/// A manager over the whole cluster whose events are recorded from before
/// initialize() on.
struct manager_fixture {
  std::shared_ptr<test::event_recorder> rec = std::make_shared<test::event_recorder>();
  connection_manager mgr{test::fast_options()};
  subscription sub = mgr.on_any([r = rec](const node_event& e) { (*r)(e); });
  manager_fixture() { mgr.initialize(test::all_nodes()); }
};

using strings = std::vector<std::string>;

} // namespace

BOOST_FIXTURE_TEST_SUITE(health, manager_fixture)

BOOST_AUTO_TEST_CASE(roles_latency_and_first_events) {
  // initialize() returns after the first probe of every node.
  const strings all{"node0", "node1", "node2"};
  for (auto& n : all) {
    BOOST_TEST_CONTEXT("node " << n) {
      auto h = mgr.get_health(n);
      BOOST_REQUIRE(h);
      BOOST_CHECK(h->status == health_state::healthy);
      BOOST_CHECK(h->role == (n == "node0" ? node_role::primary : node_role::standby));
      BOOST_CHECK_GT(h->latency.count(), 0);
      BOOST_CHECK_EQUAL(h->consecutive_failures, 0);
      BOOST_CHECK(!h->last_error);
      // last_check is a real, recent time.
      auto age = std::chrono::system_clock::now() - h->last_check;
      BOOST_CHECK(age >= -5s && age < 60s);
      // get_node() agrees with get_health().
      auto info = mgr.get_node(n);
      BOOST_REQUIRE(info);
      BOOST_CHECK(info->health.role == h->role);
      BOOST_CHECK_EQUAL(info->id, n);
    }
  }
  BOOST_CHECK(ids(mgr.get_healthy_nodes()) == all);
  // The role the probe saw matches what the server says.
  for (auto& r : mgr.query_all("SELECT pg_is_in_recovery() AS r")) {
    BOOST_REQUIRE(r.success);
    BOOST_CHECK_EQUAL(r.data[0].get<bool>("r"),
                      mgr.get_health(r.node_id)->role == node_role::standby);
  }
  // Events: subscribed before initialize(), so nothing was missed. Per node:
  // node_added first, then node_connected and one node_health (healthy, with
  // its role). Callbacks may lag behind initialize() a little.
  for (auto& n : all) {
    BOOST_TEST_CONTEXT("node " << n) {
      BOOST_CHECK(test::eventually(
          [&] {
            return rec->of(n, event::node_connected).size() == 1 &&
                   rec->of(n, event::node_health).size() == 1;
          },
          5s));
      auto evs = rec->of(n);
      BOOST_REQUIRE(!evs.empty());
      BOOST_CHECK(evs.front().type == event::node_added);
      BOOST_CHECK_EQUAL(rec->of(n, event::node_added).size(), 1u);
      auto health = rec->of(n, event::node_health);
      BOOST_REQUIRE_EQUAL(health.size(), 1u);
      BOOST_REQUIRE(health[0].health);
      BOOST_CHECK(health[0].health->status == health_state::healthy);
      BOOST_CHECK(health[0].health->role ==
                  (n == "node0" ? node_role::primary : node_role::standby));
      BOOST_CHECK(rec->of(n, event::node_disconnected).empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(stopped_node_turns_unhealthy_then_healthy_again) {
  const auto threshold = mgr.options().unhealthy_threshold;
  BOOST_REQUIRE(test::eventually([&] { return rec->states("node2").size() == 1; }, 5s));
  {
    test::stopped_node down{"node2"};
    auto stopped_at = std::chrono::steady_clock::now();

    // Unhealthy after `unhealthy_threshold` failed probes (200 ms apart).
    BOOST_REQUIRE(test::eventually([&] { return is_unhealthy(mgr, "node2"); }, 10s));
    BOOST_TEST_MESSAGE("node2 unhealthy after " << test::ms_since(stopped_at) << " ms");
    auto h = mgr.get_health("node2");
    BOOST_CHECK_GE(h->consecutive_failures, threshold);
    BOOST_REQUIRE(h->last_error);
    BOOST_CHECK(h->last_error->find("node2") != std::string::npos);
    // The other nodes are unaffected.
    BOOST_CHECK(is_healthy(mgr, "node0"));
    BOOST_CHECK(is_healthy(mgr, "node1"));
    BOOST_CHECK(ids(mgr.get_healthy_nodes()) == (strings{"node0", "node1"}));

    // query_healthy skips the down node; query_all still reports it.
    auto healthy = mgr.query_healthy("SELECT 1 AS one", {}, 5s);
    BOOST_CHECK(ids(healthy) == (strings{"node0", "node1"}));
    for (auto& r : healthy)
      BOOST_CHECK(r.success);
    auto start = std::chrono::steady_clock::now();
    auto all = mgr.query_all("SELECT 1 AS one", {}, 5s);
    BOOST_CHECK_LT(test::ms_since(start), 2500);
    BOOST_REQUIRE(ids(all) == (strings{"node0", "node1", "node2"}));
    BOOST_CHECK(all[0].success);
    BOOST_CHECK(all[1].success);
    BOOST_CHECK(!all[2].success);
    BOOST_REQUIRE(all[2].error);
    BOOST_CHECK_EQUAL(to_string(all[2].error->code), to_string(errc::connection_failed));
    // A query to the down node fails at once, naming it.
    start = std::chrono::steady_clock::now();
    try {
      mgr.query("node2", "SELECT 1", {}, 5s);
      BOOST_FAIL("query on a stopped node succeeded");
    } catch (const error& e) {
      BOOST_CHECK_EQUAL(to_string(e.code()), to_string(errc::connection_failed));
      BOOST_CHECK(std::string{e.what()}.find("node2") != std::string::npos);
    }
    BOOST_CHECK_LT(test::ms_since(start), 2500);

    // The pool lost its connection: node_disconnected, with the error.
    BOOST_CHECK(
        test::eventually([&] { return !rec->of("node2", event::node_disconnected).empty(); }, 5s));
    for (auto& e : rec->of("node2", event::node_disconnected)) {
      BOOST_REQUIRE(e.error);
      BOOST_CHECK_EQUAL(to_string(e.error->code), to_string(errc::connection_failed));
      BOOST_CHECK(!e.error->message.empty());
    }

    down.start();
    BOOST_REQUIRE(test::eventually([&] { return is_healthy(mgr, "node2"); }, 10s));
  }
  auto h = mgr.get_health("node2");
  BOOST_CHECK_EQUAL(h->consecutive_failures, 0);
  BOOST_CHECK(!h->last_error);
  BOOST_CHECK(h->role == node_role::standby);
  BOOST_CHECK_GT(h->latency.count(), 0);
  BOOST_CHECK(ids(mgr.get_healthy_nodes()) == (strings{"node0", "node1", "node2"}));
  // The pool reconnects (with backoff) and serves again.
  BOOST_CHECK(test::eventually([&] { return test::answers(mgr, "node2"); }, 10s));
  BOOST_CHECK(test::eventually([&] { return mgr.query_healthy("SELECT 1").size() == 3; }, 5s));

  // node_health events of node2, in order: healthy (start), unhealthy, healthy.
  BOOST_REQUIRE(test::eventually([&] { return rec->states("node2").size() >= 3; }, 5s));
  auto states = rec->states("node2");
  BOOST_CHECK_MESSAGE(states ==
                          (std::vector<health_state>{health_state::healthy, health_state::unhealthy,
                                                     health_state::healthy}),
                      "node2 went through " << states_str(states));
  auto evs = rec->of("node2", event::node_health);
  BOOST_REQUIRE_GE(evs.size(), 3u);
  // The unhealthy event carries the failure count at the transition and the error.
  BOOST_CHECK_EQUAL(evs[1].health->consecutive_failures, threshold);
  BOOST_CHECK(evs[1].health->last_error.has_value());
  BOOST_CHECK(evs[2].health->role == node_role::standby);
  BOOST_CHECK(!evs[2].health->last_error);
  // Connection events of node2, in order: connected, disconnected, connected.
  BOOST_CHECK(
      test::eventually([&] { return rec->of("node2", event::node_connected).size() == 2; }, 5s));
  std::vector<event> conn;
  for (auto& e : rec->of("node2"))
    if (e.type == event::node_connected || e.type == event::node_disconnected)
      conn.push_back(e.type);
  BOOST_CHECK(conn == (std::vector<event>{event::node_connected, event::node_disconnected,
                                          event::node_connected}));
  // The other nodes never changed.
  BOOST_CHECK_EQUAL(states_str(rec->states("node0")), "healthy");
  BOOST_CHECK_EQUAL(states_str(rec->states("node1")), "healthy");
  BOOST_CHECK(rec->of("node0", event::node_disconnected).empty());
  BOOST_CHECK(rec->of("node1", event::node_disconnected).empty());
}

BOOST_AUTO_TEST_CASE(fan_out_right_after_a_node_stops) {
  // No waiting for the probe: the fan-out runs as soon as the node is down.
  // Its entry fails with connection_failed well within the timeout; the
  // others succeed.
  test::stopped_node down{"node1"};
  auto start = std::chrono::steady_clock::now();
  auto results = mgr.query_all("SELECT $1::int AS v", {7}, 10s);
  auto took = test::ms_since(start);
  BOOST_TEST_MESSAGE("fan-out with node1 down took " << took << " ms");
  BOOST_CHECK_LT(took, 3000);
  BOOST_REQUIRE(ids(results) == (strings{"node0", "node1", "node2"}));
  BOOST_CHECK(results[0].success);
  BOOST_CHECK(!results[1].success);
  BOOST_CHECK(results[2].success);
  BOOST_CHECK_EQUAL(results[0].data[0].get<int>("v"), 7);
  BOOST_CHECK_EQUAL(results[2].data[0].get<int>("v"), 7);
  BOOST_REQUIRE(results[1].error);
  BOOST_CHECK_EQUAL(to_string(results[1].error->code), to_string(errc::connection_failed));
  BOOST_CHECK(results[1].error->message.find("node1") != std::string::npos);
  // Again a few times while the node stays down: always fast, never a timeout.
  for (int i = 0; i < 5; ++i) {
    start = std::chrono::steady_clock::now();
    auto again = mgr.query_all("SELECT 1", {}, 10s);
    BOOST_CHECK_LT(test::ms_since(start), 3000);
    BOOST_REQUIRE_EQUAL(again.size(), 3u);
    BOOST_CHECK(again[0].success && !again[1].success && again[2].success);
    BOOST_CHECK(again[1].error && again[1].error->code == errc::connection_failed);
  }
  // Once the probe noticed, query_healthy leaves node1 out.
  BOOST_REQUIRE(test::eventually([&] { return is_unhealthy(mgr, "node1"); }, 10s));
  auto healthy = mgr.query_healthy("SELECT 1", {}, 10s);
  BOOST_CHECK(ids(healthy) == (strings{"node0", "node2"}));
  for (auto& r : healthy)
    BOOST_CHECK(r.success);
  down.start();
  BOOST_CHECK(test::eventually([&] { return is_healthy(mgr, "node1"); }, 10s));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(an_unhealthy_node_is_probed_at_the_unhealthy_interval) {
  auto opts = test::fast_options();
  opts.health_check_interval = 5s;
  opts.health_check_timeout = 1s;
  opts.unhealthy_check_interval = 100ms;
  opts.healthy_threshold = 2;
  auto log = std::make_shared<test::event_recorder>();
  connection_manager mgr{opts};
  auto sub = mgr.on(event::node_health, [log](const node_event& e) { (*log)(e); });
  {
    test::stopped_node down{"node2"};
    mgr.initialize(test::all_nodes());
    BOOST_REQUIRE(mgr.get_health("node2")->status == health_state::unhealthy);
    // At the 5 s interval this would be 1 failure for a long while.
    BOOST_CHECK(
        test::eventually([&] { return mgr.get_health("node2")->consecutive_failures >= 5; }, 3s));
  }
  // Back up: healthy after two good probes, at the fast interval, not in 5 s.
  auto t0 = std::chrono::steady_clock::now();
  BOOST_CHECK(test::eventually(
      [&] { return mgr.get_health("node2")->status == health_state::healthy; }, 3s));
  BOOST_CHECK_LT(test::ms_since(t0), 3000);
}

// Once a restarted node is reported healthy, its next query is served, even
// when the pool was waiting out a long reconnect backoff (it used to fail at
// once, for seconds, with the old "connection refused").
BOOST_AUTO_TEST_CASE(a_restarted_node_serves_its_first_query_once_healthy) {
  auto opts = test::fast_options();
  opts.reconnect_backoff_initial = 4s;
  opts.reconnect_backoff_max = 8s;
  opts.unhealthy_check_interval = 100ms;
  connection_manager mgr{opts};
  mgr.initialize(test::all_nodes());
  {
    test::stopped_node down{"node1"};
    BOOST_REQUIRE(test::eventually(
        [&] { return mgr.get_health("node1")->status == health_state::unhealthy; }, 10s));
    // The pool has failed to reconnect at least once: it is in its backoff.
    BOOST_REQUIRE(
        test::eventually([&] { return mgr.get_pool_stats("node1")->connect_failures >= 1; }, 10s));
  }
  BOOST_REQUIRE(test::eventually(
      [&] { return mgr.get_health("node1")->status == health_state::healthy; }, 5s));
  auto t0 = std::chrono::steady_clock::now();
  std::string failure;
  try {
    BOOST_CHECK_EQUAL(mgr.query("node1", "SELECT 1 AS one", {}, 3s)[0].get<int>("one"), 1);
  } catch (const pgcm::error& e) {
    failure = e.what();
  }
  BOOST_CHECK_MESSAGE(failure.empty(), "first query after healthy failed: " << failure);
  BOOST_CHECK_LT(test::ms_since(t0), 2000); // not after the 4 s backoff
  // Error texts name the node once.
  auto h = mgr.get_health("node1");
  BOOST_CHECK(!h->last_error || h->last_error->find("node node1: connection failed: node node1") ==
                                    std::string::npos);
}
