// The lease (src/lease.hpp, docs/threading.md I6-I8): a facade query runs on
// an idle pool connection on the caller's own thread. Concurrency, a
// connection the server ended while parked, timeouts cancelled on the
// server, shutdown and remove_node while a caller holds a lease, and the
// pool stats of leased queries.
#define BOOST_TEST_MODULE test_lease
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "fixture.hpp"
#include "lease.hpp"

using namespace std::chrono_literals;
using namespace pgcm;
using pgcm::test::cluster;

namespace {

manager_options quiet_options() {
  auto o = test::fast_options();
  o.health_check_interval = 30s; // no probe traffic meanwhile
  return o;
}

node_config small_pool(const std::string& name, int max) {
  auto cfg = test::node(name);
  cfg.pool.min = 1;
  cfg.pool.max = max;
  return cfg;
}

int backend_pid(connection_manager& mgr) {
  return mgr.query("node0", "SELECT pg_backend_pid()")[0].get<int>(0);
}

int running(const std::string& sql) {
  return std::stoi(cluster::get().admin_sql(
      "node0", "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '" + sql +
                   "' AND application_name = '" + test::app_name() + "'"));
}

} // namespace

// Many threads on few connections: every call gets its own answer, leased
// or (no idle connection) through the supervisor.
BOOST_AUTO_TEST_CASE(concurrent_callers_each_get_their_own_answer) {
  connection_manager mgr{quiet_options()};
  mgr.initialize({{"node0", small_pool("node0", 4)}});
  auto before = detail::leases_taken();
  constexpr int threads = 12;
  constexpr int per_thread = 150;
  std::atomic<int> wrong{0};
  std::atomic<int> failed{0};
  std::string first_error; // written by the first failing thread only
  std::vector<std::thread> callers;
  for (int t = 0; t < threads; ++t)
    callers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        int want = t * 100000 + i;
        try {
          auto rs = mgr.query("node0", "SELECT $1::int AS n", {want});
          if (rs.size() != 1 || rs[0].get<int>(0) != want) ++wrong;
        } catch (const std::exception& e) {
          // The first failure's text is the one that says what went wrong.
          if (failed++ == 0) first_error = e.what();
        }
      }
    });
  for (auto& c : callers)
    c.join();
  BOOST_CHECK_EQUAL(wrong.load(), 0);
  BOOST_CHECK_MESSAGE(failed.load() == 0, failed.load()
                                              << " queries failed; the first: " << first_error);
  auto leased = detail::leases_taken() - before;
  BOOST_TEST_MESSAGE(leased << " of " << threads * per_thread << " queries leased");
  if (test::leasing_on())
    BOOST_CHECK_GT(leased, 0u);
  else
    BOOST_CHECK_EQUAL(leased, 0u); // PGCM_INLINE=0 turns leasing off
  // Every answer is counted, leased or not.
  BOOST_CHECK(test::eventually(
      [&] { return mgr.get_pool_stats("node0")->queries_ok >= threads * per_thread; }));
  mgr.shutdown();
}

// A parked connection the server terminated is found when it is leased (or
// by the sweep): the next query still succeeds, on a new connection.
BOOST_AUTO_TEST_CASE(a_connection_terminated_while_parked_is_replaced) {
  connection_manager mgr{quiet_options()};
  mgr.initialize({{"node0", small_pool("node0", 1)}});
  auto pid = backend_pid(mgr);
  auto opened = mgr.get_pool_stats("node0")->connections_opened;
  cluster::get().admin_sql("node0", "SELECT pg_terminate_backend(" + std::to_string(pid) + ")");
  // At once: the sweep (1 s) has not seen it yet.
  int now_pid = 0;
  BOOST_CHECK_NO_THROW(now_pid = backend_pid(mgr));
  BOOST_CHECK_NE(now_pid, pid);
  BOOST_CHECK_GT(mgr.get_pool_stats("node0")->connections_opened, opened);
  for (int i = 0; i < 20; ++i)
    BOOST_CHECK_EQUAL(mgr.query("node0", "SELECT 1")[0].get<int>(0), 1);
  // And without a query: the sweep finds it.
  auto pid2 = backend_pid(mgr);
  opened = mgr.get_pool_stats("node0")->connections_opened;
  cluster::get().admin_sql("node0", "SELECT pg_terminate_backend(" + std::to_string(pid2) + ")");
  BOOST_CHECK(test::eventually(
      [&] { return mgr.get_pool_stats("node0")->connections_opened > opened; }, 5s));
  mgr.shutdown();
}

// A connection busy moments ago is leased without the readable-while-idle
// check: a session the server ended meanwhile answers the statement with its
// FATAL message, and the statement, certain not to have run, is retried on
// another connection (the caller sees nothing).
BOOST_AUTO_TEST_CASE(a_connection_terminated_right_after_use_retries_the_statement) {
  connection_manager mgr{quiet_options()};
  mgr.initialize({{"node0", small_pool("node0", 1)}});
  connection_manager admin{quiet_options()};
  admin.initialize({{"node0", small_pool("node0", 1)}});
  for (int round = 0; round < 5; ++round) {
    auto retried = mgr.get_pool_stats("node0")->queries_retried;
    auto pid = backend_pid(mgr);
    // Well within the 10 ms: a query on a connection of its own.
    admin.query("node0", "SELECT pg_terminate_backend($1)", {pid});
    int now_pid = 0;
    BOOST_CHECK_NO_THROW(now_pid = backend_pid(mgr));
    BOOST_CHECK_NE(now_pid, pid);
    // Retried by the lessee, or found by the check / by the worker first
    // (the 10 ms may have passed on a loaded machine): never failed.
    BOOST_CHECK(
        test::eventually([&] { return mgr.get_pool_stats("node0")->queries_failed == 0; }, 1s));
    if (test::leasing_on() && round == 4)
      BOOST_TEST_MESSAGE("retried: " << mgr.get_pool_stats("node0")->queries_retried - retried);
  }
  mgr.shutdown();
  admin.shutdown();
}

// A leased query past its deadline is cancelled on the server; the caller
// gets query_timeout and the connection stays usable.
BOOST_AUTO_TEST_CASE(a_leased_query_times_out_and_is_cancelled_on_the_server) {
  connection_manager mgr{quiet_options()};
  mgr.initialize({{"node0", small_pool("node0", 1)}});
  auto pid = backend_pid(mgr);
  auto before = detail::leases_taken();
  auto start = std::chrono::steady_clock::now();
  try {
    mgr.query("node0", "SELECT pg_sleep(20)", {}, 300ms);
    BOOST_ERROR("pg_sleep(20) with a 300 ms timeout returned");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::query_timeout);
    BOOST_CHECK_NE(std::string{e.what()}.find("query timeout"), std::string::npos);
  }
  auto took = test::ms_since(start);
  BOOST_CHECK_GE(took, 250);
  BOOST_CHECK_LT(took, 300 + 1000); // answered at the deadline; the worker reads the cancel's end
  if (test::leasing_on()) BOOST_CHECK_GT(detail::leases_taken(), before);
  BOOST_CHECK(test::eventually([] { return running("SELECT pg_sleep(20)") == 0; }, 3s));
  BOOST_CHECK_EQUAL(backend_pid(mgr), pid); // the same connection, reused
  BOOST_CHECK(
      test::eventually([&] { return mgr.get_pool_stats("node0")->queries_timed_out >= 1; }, 2s));
  BOOST_CHECK_EQUAL(mgr.get_pool_stats("node0")->connections_discarded, 0);
  mgr.shutdown();
}

// While a caller holds a lease, the pool reports the connection in use.
BOOST_AUTO_TEST_CASE(a_leased_connection_counts_in_flight) {
  connection_manager mgr{quiet_options()};
  mgr.initialize({{"node0", small_pool("node0", 2)}});
  mgr.query("node0", "SELECT 1");
  auto ok_before = mgr.get_pool_stats("node0")->queries_ok;
  auto sleeper = std::async(std::launch::async,
                            [&] { return mgr.query("node0", "SELECT pg_sleep(1.5)").size(); });
  BOOST_CHECK(test::eventually([] { return running("SELECT pg_sleep(1.5)") == 1; }, 3s));
  auto stats = mgr.get_pool_stats("node0");
  BOOST_REQUIRE(stats);
  BOOST_CHECK_EQUAL(stats->in_flight_requests, 1);
  BOOST_CHECK_EQUAL(stats->idle_connections, stats->total_connections - 1);
  BOOST_CHECK_EQUAL(sleeper.get(), 1u);
  BOOST_CHECK(test::eventually([&] {
    auto s = mgr.get_pool_stats("node0");
    return s->queries_ok >= ok_before + 1 && s->in_flight_requests == 0;
  }));
  mgr.shutdown();
}

namespace {

/// A caller holds a lease (a long pg_sleep) while `stop` runs: `stop` is
/// bounded and the caller gets its answer (shutting_down or a result) by
/// the shutdown deadline.
void stop_while_leased(const std::function<void(connection_manager&)>& stop) {
  auto opts = quiet_options();
  opts.shutdown_timeout = 1000ms;
  connection_manager mgr{opts};
  mgr.initialize({{"node0", small_pool("node0", 1)}});
  mgr.query("node0", "SELECT 1");
  auto before = detail::leases_taken();
  auto caller = std::async(std::launch::async, [&]() -> std::string {
    try {
      mgr.query("node0", "SELECT pg_sleep(30)", {}, 60s);
      return "result";
    } catch (const error& e) {
      return std::string{to_string(e.code())};
    }
  });
  BOOST_REQUIRE(test::eventually([] { return running("SELECT pg_sleep(30)") == 1; }, 3s));
  if (test::leasing_on()) BOOST_CHECK_GT(detail::leases_taken(), before);
  auto start = std::chrono::steady_clock::now();
  stop(mgr);
  BOOST_CHECK_LT(test::ms_since(start), 1000 + 2500);
  BOOST_REQUIRE(caller.wait_for(4s) == std::future_status::ready);
  BOOST_CHECK_EQUAL(caller.get(), to_string(errc::shutting_down));
  BOOST_CHECK_LT(test::ms_since(start), 1000 + 4000);
  BOOST_CHECK(test::eventually([] { return running("SELECT pg_sleep(30)") == 0; }, 3s));
}

} // namespace

BOOST_AUTO_TEST_CASE(shutdown_while_a_caller_holds_a_lease_is_bounded) {
  stop_while_leased([](connection_manager& mgr) { mgr.shutdown(); });
}

BOOST_AUTO_TEST_CASE(remove_node_while_a_caller_holds_a_lease_is_bounded) {
  stop_while_leased([](connection_manager& mgr) {
    mgr.remove_node("node0");
    BOOST_CHECK(!mgr.has_node("node0"));
  });
}
