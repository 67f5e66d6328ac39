// The facade's fan-out on leases (issue 11, connection_manager.cpp
// fan_out_here): query_all / query_healthy run on a leased connection of
// each node, all on the caller's thread with one poll(); a node with no idle
// connection goes to its supervisor. The results must be exactly the
// manager's fan-out's (same nodes, order, values, per-node errors, healthy
// filter), every node answered once, a timeout on one node cancelled on the
// server, and the same with inline execution off (the manager's fan-out).
#define BOOST_TEST_MODULE test_fanout
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <caf/logger.hpp>
#include <caf/scoped_actor.hpp>

#include <pgcm/actors/remote_link.hpp>
#include <pgcm/messages/error.hpp>
#include <pgcm/messages/protocol.hpp>

#include "fixture.hpp"
#include "lease.hpp"

using namespace std::chrono_literals;
using namespace pgcm;
using pgcm::test::cluster;

namespace {

manager_options options(bool inline_execution = true) {
  auto o = test::fast_options();
  if (!inline_execution) o.inline_execution = false;
  return o;
}

/// The manager actor's own fan-out (what query_all answered before issue 11).
std::vector<node_result_set> managers_fan_out(connection_manager& mgr, const std::string& sql,
                                              std::vector<param> params,
                                              std::chrono::milliseconds t, bool healthy_only) {
  std::vector<node_result_set> out;
  {
    caf::scoped_actor self{mgr.system()};
    caf::error failure;
    self->request(manager_handle(mgr), t + 5s, query_all_atom::value, sql, std::move(params),
                  caf::timespan{t}, healthy_only)
        .receive([&](std::vector<node_result_set>& rs) { out = std::move(rs); },
                 [&](caf::error& e) { failure = std::move(e); });
    BOOST_REQUIRE_MESSAGE(!failure, "manager's fan-out failed: " << caf::to_string(failure));
  }
  caf::logger::set_current_actor_system(nullptr); // threading.md I13
  return out;
}

std::string describe(const node_result_set& r) {
  std::string s = r.node_id + (r.success ? " ok" : " failed");
  if (r.success) {
    s += " node_id=" + r.data.node_id() + " cols=";
    for (auto& c : r.data.columns())
      s += c + ",";
    for (std::size_t i = 0; i < r.data.size(); ++i)
      for (std::size_t c = 0; c < r.data.column_count(); ++c)
        s += " [" + (r.data[i].is_null(c) ? std::string{"NULL"} : std::string{r.data[i].text(c)}) +
             "]";
  } else if (r.error) {
    s += " " + to_string(r.error->code) + " sqlstate=" + r.error->sqlstate.value_or("") +
         " names node: " + (r.error->message.find(r.node_id) != std::string::npos ? "yes" : "no");
  } else {
    s += " without error";
  }
  return s;
}

std::vector<std::string> described(const std::vector<node_result_set>& rs) {
  std::vector<std::string> out;
  for (auto& r : rs)
    out.push_back(describe(r));
  return out;
}

void check_same(const std::vector<node_result_set>& got, const std::vector<node_result_set>& want) {
  auto a = described(got);
  auto b = described(want);
  BOOST_CHECK_EQUAL(a.size(), b.size());
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    BOOST_CHECK_EQUAL(a[i], b[i]);
}

std::vector<std::string> ids(const std::vector<node_result_set>& rs) {
  std::vector<std::string> out;
  for (auto& r : rs)
    out.push_back(r.node_id);
  return out;
}

using strings = std::vector<std::string>;

/// Statements of this process running `sql` on `node`.
int running(const std::string& node, const std::string& sql) {
  return std::stoi(cluster::get().admin_sql(
      node, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '" + sql +
                "' AND application_name = '" + test::app_name() + "'"));
}

/// Fans out until one call ran on a lease of every node (`n` nodes): the
/// first fan-outs mark the pools as leased from, and a worker parks its
/// connection only after it answered. False if that never happened.
bool all_leased(connection_manager& mgr, std::uint64_t n) {
  return test::eventually(
      [&] {
        auto before = detail::leases_taken();
        for (auto& r : mgr.query_all("SELECT 1", {}, 10s))
          if (!r.success) return false;
        return detail::leases_taken() - before >= n;
      },
      5s);
}

void compare_with_manager(connection_manager& mgr) {
  const strings all{"node0", "node1", "node2"};
  BOOST_REQUIRE(test::eventually([&] { return mgr.get_healthy_nodes().size() == 3; }, 10s));
  // One lease per node, all on this thread (none with inline execution off).
  if (test::leasing_on() && mgr.options().effective_inline_execution())
    BOOST_CHECK(all_leased(mgr, 3));
  // Values, node ids and order.
  auto got = mgr.query_all("SELECT pg_is_in_recovery() AS r, $1::text AS echo", {"hi"}, 10s);
  BOOST_CHECK(ids(got) == all);
  check_same(got, managers_fan_out(mgr, "SELECT pg_is_in_recovery() AS r, $1::text AS echo", {"hi"},
                                   10s, false));
  // Per-node errors: the standbys fail (division by zero), the primary answers.
  const std::string mixed = "SELECT 1 / (CASE WHEN pg_is_in_recovery() THEN 0 ELSE 1 END) AS x";
  got = mgr.query_all(mixed, {}, 10s);
  BOOST_REQUIRE_EQUAL(got.size(), 3u);
  BOOST_CHECK(got[0].success);
  BOOST_CHECK(!got[1].success && got[1].error && got[1].error->sqlstate == "22012");
  check_same(got, managers_fan_out(mgr, mixed, {}, 10s, false));
  check_same(mgr.query_healthy("SELECT 42 AS n", {}, 10s),
             managers_fan_out(mgr, "SELECT 42 AS n", {}, 10s, true));
  // A statement the manager refuses is refused the same way.
  BOOST_CHECK_EXCEPTION(mgr.query_all("BEGIN"), pgcm::error,
                        [](const pgcm::error& e) { return e.code() == errc::invalid_argument; });
}

} // namespace

BOOST_AUTO_TEST_CASE(results_are_the_managers) {
  connection_manager mgr{options()};
  mgr.initialize(test::all_nodes());
  compare_with_manager(mgr);
}

BOOST_AUTO_TEST_CASE(results_are_the_managers_with_inline_execution_off) {
  connection_manager mgr{options(false)};
  mgr.initialize(test::all_nodes());
  auto before = detail::leases_taken();
  compare_with_manager(mgr);
  BOOST_CHECK_EQUAL(detail::leases_taken(), before); // PGCM_INLINE=0: no lease
}

// A stopped node: query_all reports its error in its place, query_healthy
// leaves it out once the manager counts it unhealthy; the same as the
// manager's fan-out.
BOOST_AUTO_TEST_CASE(stopped_node_error_and_healthy_filter) {
  connection_manager mgr{options()};
  mgr.initialize(test::all_nodes());
  BOOST_REQUIRE(test::eventually([&] { return mgr.get_healthy_nodes().size() == 3; }, 10s));
  test::stopped_node down{"node2"};
  BOOST_REQUIRE(test::eventually(
      [&] { return mgr.get_health("node2")->status == health_state::unhealthy; }, 10s));
  auto all = mgr.query_all("SELECT 1 AS one", {}, 5s);
  BOOST_REQUIRE(ids(all) == (strings{"node0", "node1", "node2"}));
  BOOST_CHECK(all[0].success && all[1].success);
  BOOST_CHECK(!all[2].success);
  BOOST_REQUIRE(all[2].error);
  BOOST_CHECK_EQUAL(to_string(all[2].error->code), to_string(errc::connection_failed));
  check_same(all, managers_fan_out(mgr, "SELECT 1 AS one", {}, 5s, false));
  auto healthy = mgr.query_healthy("SELECT 1 AS one", {}, 5s);
  BOOST_CHECK(ids(healthy) == (strings{"node0", "node1"}));
  check_same(healthy, managers_fan_out(mgr, "SELECT 1 AS one", {}, 5s, true));
}

// node1's only connection is busy with a pg_sleep: node1 goes the actor way
// (answered once its connection is free), the other nodes on leases.
BOOST_AUTO_TEST_CASE(busy_node_goes_the_actor_way_others_leased) {
  auto nodes = test::all_nodes();
  nodes[1].second.pool.min = 1;
  nodes[1].second.pool.max = 1;
  connection_manager mgr{options()};
  mgr.initialize(nodes);
  BOOST_REQUIRE(test::eventually([&] { return mgr.get_healthy_nodes().size() == 3; }, 10s));
  if (test::leasing_on()) BOOST_REQUIRE(all_leased(mgr, 3));
  const std::string sleep = "SELECT pg_sleep(1.5)";
  auto sleeper = std::async(std::launch::async, [&] { mgr.query("node1", sleep, {}, 10s); });
  BOOST_REQUIRE(test::eventually([&] { return running("node1", sleep) == 1; }, 5s));
  auto started = std::chrono::steady_clock::now();
  auto before = detail::leases_taken();
  auto got = mgr.query_all("SELECT $1::int AS v", {7}, 10s);
  auto took = test::ms_since(started);
  BOOST_REQUIRE(ids(got) == (strings{"node0", "node1", "node2"}));
  for (auto& r : got) {
    BOOST_CHECK_MESSAGE(r.success, describe(r));
    if (r.success) {
      BOOST_CHECK_EQUAL(r.data[0].get<int>(0), 7);
      BOOST_CHECK_EQUAL(r.data.node_id(), r.node_id);
    }
  }
  // node1 waited for its only connection (the sleep had ~1.5 s left).
  BOOST_CHECK_GE(took, 500);
  if (test::leasing_on()) BOOST_CHECK_GE(detail::leases_taken() - before, 2u);
  sleeper.get();
}

// A timeout on one node of a fan-out: that node answers query_timeout and
// its statement is cancelled on the server; the others answer.
BOOST_AUTO_TEST_CASE(timeout_on_one_node_cancels_it_others_answer) {
  connection_manager mgr{options()};
  mgr.initialize(test::all_nodes());
  BOOST_REQUIRE(test::eventually([&] { return mgr.get_healthy_nodes().size() == 3; }, 10s));
  if (test::leasing_on()) BOOST_REQUIRE(all_leased(mgr, 3)); // the lessee cancels, not the worker
  // Sleeps on the primary only.
  const std::string sql =
      "SELECT pg_sleep(CASE WHEN pg_is_in_recovery() THEN 0 ELSE 20 END) AS s, 5 AS v";
  auto before = detail::leases_taken();
  auto started = std::chrono::steady_clock::now();
  auto got = mgr.query_all(sql, {}, 700ms);
  auto took = test::ms_since(started);
  if (test::leasing_on()) BOOST_CHECK_GE(detail::leases_taken() - before, 1u);
  BOOST_REQUIRE(ids(got) == (strings{"node0", "node1", "node2"}));
  BOOST_CHECK(!got[0].success);
  BOOST_REQUIRE(got[0].error);
  BOOST_CHECK_EQUAL(to_string(got[0].error->code), to_string(errc::query_timeout));
  BOOST_CHECK(got[0].error->message.find("node0") != std::string::npos);
  BOOST_CHECK_MESSAGE(got[1].success, describe(got[1]));
  BOOST_CHECK_MESSAGE(got[2].success, describe(got[2]));
  // Answered at the deadline, not after the 20 s sleep (generous bound).
  BOOST_CHECK_LT(took, 10'000);
  // Cancelled on the server.
  BOOST_CHECK(test::eventually([&] { return running("node0", sql) == 0; }, 5s));
  // And the pool is fine afterwards.
  for (auto& r : mgr.query_all("SELECT 1 AS one", {}, 10s))
    BOOST_CHECK_MESSAGE(r.success, describe(r));
}

// Many threads fanning out at once: every answer is its own caller's.
BOOST_AUTO_TEST_CASE(concurrent_fan_outs_each_get_their_own_answers) {
  auto nodes = test::all_nodes();
  for (auto& n : nodes)
    n.second.pool.max = 3; // fewer connections than callers: some go the actor way
  connection_manager mgr{options()};
  mgr.initialize(nodes);
  BOOST_REQUIRE(test::eventually([&] { return mgr.get_healthy_nodes().size() == 3; }, 10s));
  constexpr int threads = 8;
  constexpr int per_thread = 60;
  std::atomic<int> wrong{0};
  std::atomic<int> failed{0};
  std::string first_error;
  std::vector<std::thread> callers;
  for (int t = 0; t < threads; ++t)
    callers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        int want = t * 100000 + i;
        try {
          auto rs = (i % 2 == 0 ? mgr.query_all("SELECT $1::int AS n", {want}, 10s)
                                : mgr.query_healthy("SELECT $1::int AS n", {want}, 10s));
          if (ids(rs) != strings{"node0", "node1", "node2"}) {
            ++wrong;
            continue;
          }
          for (auto& r : rs) {
            if (!r.success) {
              if (failed++ == 0) first_error = describe(r);
            } else if (r.data.size() != 1 || r.data[0].get<int>(0) != want ||
                       r.data.node_id() != r.node_id) {
              ++wrong;
            }
          }
        } catch (const std::exception& e) {
          if (failed++ == 0) first_error = e.what();
        }
      }
    });
  for (auto& c : callers)
    c.join();
  BOOST_CHECK_EQUAL(wrong.load(), 0);
  BOOST_CHECK_MESSAGE(failed.load() == 0, failed.load() << " failed, first: " << first_error);
}
