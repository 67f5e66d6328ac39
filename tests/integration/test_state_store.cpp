// The state store (pgcm::state_store over the state_store actor): snapshots
// of nodes, health, pool statistics and latency history, kept current by
// events and refreshes; change notification; the manager going away.
#define BOOST_TEST_MODULE test_state_store
#include <boost/test/unit_test.hpp>

#include <atomic>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include <pgcm/actors/remote_link.hpp>
#include <pgcm/actors/state_store_actor.hpp>
#include <pgcm/state_store.hpp>

#include "fixture.hpp"

using namespace std::chrono_literals;
using namespace pgcm;
using pgcm::test::cluster;

namespace {

const node_state* find(const cluster_snapshot& s, const std::string& id) {
  return s.find(id);
}

bool healthy(const cluster_snapshot& s, const std::string& id) {
  auto* n = find(s, id);
  return n != nullptr && n->info.health.status == health_state::healthy;
}

} // namespace

BOOST_AUTO_TEST_CASE(sees_every_node_from_the_start) {
  connection_manager mgr{test::fast_options()};
  state_store_options so;
  so.refresh_interval = 100ms;
  so.history_size = 5;
  state_store store{mgr, so};
  std::atomic<int> calls{0};
  store.on_change([&](std::uint64_t) { ++calls; });
  mgr.initialize(test::all_nodes());

  BOOST_TEST(store.refresh());
  auto snap = store.snapshot();
  BOOST_TEST(snap.manager_alive);
  BOOST_TEST(snap.version > 0u);
  BOOST_REQUIRE(snap.nodes.size() == 3u);
  std::vector<std::string> ids;
  for (auto& n : snap.nodes)
    ids.push_back(n.info.id);
  BOOST_TEST(ids == (std::vector<std::string>{"node0", "node1", "node2"}),
             boost::test_tools::per_element());
  for (auto& n : snap.nodes) {
    BOOST_TEST(n.info.config.port == cluster::get().port(n.info.id));
    BOOST_TEST(!n.info.config.password); // never in a snapshot
    BOOST_TEST(n.connected.value_or(false));
    BOOST_TEST(n.info.pool.node_id == n.info.id);
  }
  BOOST_TEST(snap.healthy_count() == 3u);
  BOOST_REQUIRE(snap.primary() != nullptr);
  BOOST_TEST(snap.primary()->info.id == "node0");
  BOOST_CHECK(find(snap, "node1")->info.health.role == node_role::standby);
  BOOST_TEST(calls > 0);

  // The latency history grows with the probes, up to history_size.
  BOOST_TEST(test::eventually([&] {
    auto s = store.snapshot();
    return find(s, "node1")->history.size() == 5u;
  }));
  auto h = store.snapshot().find("node1")->history;
  for (std::size_t i = 1; i < h.size(); ++i)
    BOOST_TEST((h[i - 1].at < h[i].at));
  for (auto& smp : h) {
    BOOST_TEST(smp.ok);
    BOOST_TEST(smp.latency.count() > 0);
  }

  // Pool statistics follow the queries.
  auto before = store.snapshot().find("node0")->info.pool.queries_ok;
  for (int i = 0; i < 3; ++i)
    mgr.query("node0", "SELECT 1");
  BOOST_TEST(test::eventually(
      [&] { return store.snapshot().find("node0")->info.pool.queries_ok >= before + 3; }));
  store.on_change(nullptr);
}

BOOST_AUTO_TEST_CASE(follows_a_node_going_down_and_up) {
  connection_manager mgr{test::fast_options()};
  state_store store{mgr};
  mgr.initialize(test::all_nodes());
  BOOST_TEST(test::eventually([&] { return store.snapshot().healthy_count() == 3; }));

  cluster::get().stop_node("node2");
  // wait_for_change wakes on each change; the node turns unhealthy by events.
  auto deadline = std::chrono::steady_clock::now() + 15s;
  auto v = store.version();
  while (healthy(store.snapshot(), "node2") && std::chrono::steady_clock::now() < deadline)
    v = store.wait_for_change(v, 500ms);
  auto snap = store.snapshot();
  auto* n2 = find(snap, "node2");
  BOOST_REQUIRE(n2 != nullptr);
  BOOST_CHECK(n2->info.health.status == health_state::unhealthy);
  BOOST_TEST(n2->info.health.last_error.has_value());
  BOOST_TEST(!n2->history.empty());
  BOOST_TEST(!n2->history.back().ok);

  cluster::get().start_node("node2");
  BOOST_TEST(test::eventually([&] { return healthy(store.snapshot(), "node2"); }, 20s));
}

BOOST_AUTO_TEST_CASE(added_and_removed_nodes) {
  connection_manager mgr{test::fast_options()};
  mgr.initialize({{"node0", test::node("node0")}});
  // Created after initialize: starts from the manager's current nodes.
  state_store store{mgr};
  BOOST_TEST(store.refresh());
  BOOST_TEST(store.snapshot().nodes.size() == 1u);
  mgr.add_node("extra", test::node("node1"));
  BOOST_TEST(test::eventually([&] {
    auto s = store.snapshot();
    return s.nodes.size() == 2u && s.find("extra") != nullptr &&
           s.find("extra")->info.config.port == cluster::get().port("node1");
  }));
  mgr.remove_node("extra");
  BOOST_TEST(test::eventually([&] { return store.snapshot().nodes.size() == 1u; }));
  BOOST_TEST(store.refresh());
  BOOST_TEST(store.snapshot().find("extra") == nullptr);
}

BOOST_AUTO_TEST_CASE(marks_the_manager_gone) {
  connection_manager mgr{test::fast_options()};
  state_store store{mgr};
  mgr.initialize(test::all_nodes());
  mgr.shutdown();
  BOOST_TEST(test::eventually([&] { return !store.snapshot().manager_alive; }));
  BOOST_TEST(!store.refresh(500ms));
}

// Actor-based applications spawn the store themselves and ask it directly.
BOOST_AUTO_TEST_CASE(actor_interface) {
  connection_manager mgr{test::fast_options()};
  mgr.initialize(test::all_nodes());
  std::atomic<std::uint64_t> last{0};
  auto store =
      spawn_state_store(mgr.system(), manager_handle(mgr), state_store_options{},
                        [&](std::shared_ptr<const cluster_snapshot> s) { last = s->version; });
  {
    caf::scoped_actor self{mgr.system()};
    bool refreshed = false;
    self->request(store, 3s, refresh_atom::value)
        .receive([&](ok_atom) { refreshed = true; }, [&](caf::error&) {});
    BOOST_TEST(refreshed);
    cluster_snapshot snap;
    self->request(store, 3s, caf::get_atom::value)
        .receive([&](cluster_snapshot& s) { snap = std::move(s); }, [&](caf::error&) {});
    BOOST_TEST(snap.nodes.size() == 3u);
    BOOST_TEST(snap.version == last.load());
    self->send_exit(store, caf::exit_reason::user_shutdown);
  }
}
