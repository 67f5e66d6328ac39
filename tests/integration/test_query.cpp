// Queries on one node and on all nodes: routing, parameters, typed rows, SQL
// errors, timeouts with server-side cancellation, unknown nodes.
#define BOOST_TEST_MODULE test_query
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <dirent.h>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <pgcm/actors/remote_link.hpp>
#include <pgcm/messages/error.hpp>
#include <pgcm/messages/protocol.hpp>
#include <pgcm/scheduler.hpp>

#include "fixture.hpp"

using namespace std::chrono_literals;
using namespace pgcm;
using pgcm::test::cluster;

namespace {

/// Voluntary context switches (a thread went to sleep and was woken) of
/// every thread of this process but the calling one.
long other_threads_wakeups() {
  long total = 0;
  auto self = std::to_string(gettid());
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  while (auto* e = readdir(dir)) {
    std::string tid = e->d_name;
    if (tid == "." || tid == ".." || tid == self) continue;
    std::ifstream in{"/proc/self/task/" + tid + "/status"};
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0)
        total += std::stol(line.substr(line.find(':') + 1));
  }
  closedir(dir);
  return total;
}

struct manager_fixture {
  connection_manager mgr{test::fast_options()};
  manager_fixture() { mgr.initialize(test::all_nodes()); }
};

struct slot_row {
  std::string slot_name;
  bool active = false;
  std::optional<std::string> restart_lsn;
};

void from_row(const row& r, slot_row& s) {
  s.slot_name = r.get<std::string>("slot_name");
  s.active = r.get<bool>("active");
  s.restart_lsn = r.get<std::optional<std::string>>("restart_lsn");
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(query, manager_fixture)

BOOST_AUTO_TEST_CASE(routes_to_the_named_node) {
  for (auto& n : cluster::get().nodes()) {
    auto rs = mgr.query(n, "SELECT current_setting('port')::int AS port, pg_is_in_recovery() AS r");
    BOOST_REQUIRE_EQUAL(rs.size(), 1u);
    BOOST_CHECK_EQUAL(rs[0].get<int32_t>("port"), cluster::get().port(n));
    BOOST_CHECK_EQUAL(rs[0].get<bool>(1), n != "node0");
  }
}

BOOST_AUTO_TEST_CASE(parameters_are_sent_separately) {
  auto rs = mgr.query("node0", "SELECT $1::int + $2::int AS n", {2, 3});
  BOOST_CHECK_EQUAL(rs[0].get<int64_t>("n"), 5);
  // A parameter that looks like SQL stays a value.
  auto evil = std::string{"x'; DROP TABLE t; --"};
  rs = mgr.query("node0", "SELECT $1::text AS s, $2::bool AS b, $3::float8 AS d, $4::int AS z",
                 {evil, true, 1.5, std::nullopt});
  BOOST_CHECK_EQUAL(rs[0].get<std::string>("s"), evil);
  BOOST_CHECK_EQUAL(rs[0].get<bool>("b"), true);
  BOOST_CHECK_EQUAL(rs[0].get<double>("d"), 1.5);
  BOOST_CHECK(rs[0].is_null("z"));
  BOOST_CHECK(!rs[0].get<std::optional<int32_t>>("z"));
  // Repeated SQL runs as a prepared statement: same answers many times.
  for (int i = 0; i < 50; ++i)
    BOOST_CHECK_EQUAL(mgr.query("node0", "SELECT $1::int * 2 AS n", {i})[0].get<int32_t>(0), i * 2);
}

BOOST_AUTO_TEST_CASE(typed_rows_and_conversion_errors) {
  auto slots = mgr.query<slot_row>(
      "node0", "SELECT slot_name, active, restart_lsn FROM pg_replication_slots ORDER BY 1");
  BOOST_REQUIRE_EQUAL(slots.size(), 2u);
  BOOST_CHECK_EQUAL(slots[0].slot_name, "node1_slot");
  try {
    mgr.query("node0", "SELECT 'maybe'::text AS active")[0].get<bool>("active");
    BOOST_FAIL("no conversion error");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::conversion_failed);
    BOOST_CHECK(std::string{e.what()}.find("active") != std::string::npos);
    BOOST_CHECK(std::string{e.what()}.find("maybe") != std::string::npos);
  }
  try {
    mgr.query("node0", "SELECT NULL::int AS n")[0].get<int32_t>("n");
    BOOST_FAIL("no conversion error");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::conversion_failed);
  }
  try {
    mgr.query("node0", "SELECT 1 AS n")[0].get<int32_t>("nope");
    BOOST_FAIL("no column error");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::column_not_found);
    BOOST_CHECK(std::string{e.what()}.find("nope") != std::string::npos);
  }
  // A typed fan-out turns a conversion error into that node's error entry.
  auto all =
      mgr.query_all<slot_row>("SELECT 'x' AS slot_name, 'maybe' AS active, NULL AS restart_lsn");
  BOOST_REQUIRE_EQUAL(all.size(), 3u);
  for (auto& r : all) {
    BOOST_CHECK(!r.success);
    BOOST_CHECK(r.error->code == errc::conversion_failed);
  }
}

BOOST_AUTO_TEST_CASE(sql_errors_carry_sqlstate_and_keep_the_connection) {
  auto pid = mgr.query("node0", "SELECT pg_backend_pid() AS p")[0].get<int32_t>(0);
  try {
    mgr.query("node0", "SELECT * FROM no_such_table");
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::query_failed);
    BOOST_REQUIRE(e.sqlstate());
    BOOST_CHECK_EQUAL(*e.sqlstate(), "42P01");
    BOOST_CHECK(std::string{e.what()}.find("node0") != std::string::npos);
    BOOST_CHECK(std::string{e.what()}.find("no_such_table") != std::string::npos);
  }
  try {
    mgr.query("node0", "SELEC 1");
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_CHECK_EQUAL(e.sqlstate().value_or(""), "42601");
  }
  try {
    mgr.query("node0", "SELECT $1::int", {1, 2});
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::query_failed);
  }
  // Same backend afterwards: the connection was reused, not replaced.
  BOOST_CHECK_EQUAL(mgr.query("node0", "SELECT pg_backend_pid() AS p")[0].get<int32_t>(0), pid);
  // Writes on a standby fail with 25006.
  try {
    mgr.query("node1", "CREATE TABLE t_on_standby(x int)");
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_CHECK_EQUAL(e.sqlstate().value_or(""), "25006");
  }
}

BOOST_AUTO_TEST_CASE(affected_rows_and_commands) {
  mgr.query("node0", "CREATE TABLE IF NOT EXISTS t_affected(x int)");
  mgr.query("node0", "TRUNCATE t_affected");
  auto rs = mgr.query("node0", "INSERT INTO t_affected SELECT generate_series(1, 7)");
  BOOST_CHECK_EQUAL(rs.affected_rows(), 7);
  BOOST_CHECK_EQUAL(rs.command(), "INSERT 0 7");
  rs = mgr.query("node0", "DELETE FROM t_affected WHERE x > $1", {4});
  BOOST_CHECK_EQUAL(rs.affected_rows(), 3);
}

BOOST_AUTO_TEST_CASE(unknown_node) {
  try {
    mgr.query("nope", "SELECT 1");
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::node_not_found);
    BOOST_CHECK(std::string{e.what()}.find("nope") != std::string::npos);
    BOOST_CHECK(std::string{e.what()}.find("not found") != std::string::npos);
  }
  BOOST_CHECK(!mgr.has_node("nope"));
  BOOST_CHECK(!mgr.get_health("nope"));
  BOOST_CHECK(!mgr.get_pool_stats("nope"));
}

BOOST_AUTO_TEST_CASE(timeout_cancels_the_statement_on_the_server) {
  auto start = std::chrono::steady_clock::now();
  try {
    mgr.query("node0", "SELECT pg_sleep(30)", {}, 300ms);
    BOOST_FAIL("no timeout");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::query_timeout);
    BOOST_CHECK(std::string{e.what()}.find("timeout") != std::string::npos);
    BOOST_CHECK(std::string{e.what()}.find("node0") != std::string::npos);
  }
  auto took = test::ms_since(start);
  BOOST_CHECK_GE(took, 250);
  BOOST_CHECK_LT(took, 1500);
  // The statement no longer runs on the server.
  BOOST_CHECK(test::eventually(
      [] {
        return cluster::get().admin_sql("node0",
                                        "SELECT count(*) FROM pg_stat_activity WHERE query = "
                                        "'SELECT pg_sleep(30)' AND state = 'active'") == "0";
      },
      3s));
  // And the node still answers.
  BOOST_CHECK_EQUAL(mgr.query("node0", "SELECT 1")[0].get<int>(0), 1);
}

BOOST_AUTO_TEST_CASE(fan_out_returns_one_entry_per_node) {
  auto results = mgr.query_all("SELECT pg_is_in_recovery() AS r, $1::text AS echo", {"hi"});
  BOOST_REQUIRE_EQUAL(results.size(), 3u);
  BOOST_CHECK_EQUAL(results[0].node_id, "node0");
  BOOST_CHECK_EQUAL(results[1].node_id, "node1");
  BOOST_CHECK_EQUAL(results[2].node_id, "node2");
  for (auto& r : results) {
    BOOST_REQUIRE(r.success);
    BOOST_CHECK_EQUAL(r.data[0].get<bool>("r"), r.node_id != "node0");
    BOOST_CHECK_EQUAL(r.data[0].get<std::string>("echo"), "hi");
  }
  // A per-node failure stays in its entry.
  auto mixed = mgr.query_all("SELECT 1 / (CASE WHEN pg_is_in_recovery() THEN 0 ELSE 1 END) AS x");
  BOOST_CHECK(mixed[0].success);
  BOOST_CHECK(!mixed[1].success);
  BOOST_CHECK_EQUAL(mixed[1].error->sqlstate.value_or(""), "22012");
  BOOST_CHECK(mixed[1].error->code == errc::query_failed);
}

BOOST_AUTO_TEST_CASE(fan_out_with_a_slow_node_keeps_the_deadline) {
  // node1 sleeps past the deadline; the others answer at once.
  auto start = std::chrono::steady_clock::now();
  auto results = mgr.query_all(
      "SELECT CASE WHEN current_setting('port')::int = $1 THEN pg_sleep(5) END, 1 AS one",
      {static_cast<int>(cluster::get().port("node1"))}, 500ms);
  auto took = test::ms_since(start);
  BOOST_CHECK_LT(took, 2000);
  BOOST_REQUIRE_EQUAL(results.size(), 3u);
  BOOST_CHECK(results[0].success);
  BOOST_CHECK(!results[1].success);
  BOOST_CHECK(results[1].error->code == errc::query_timeout);
  BOOST_CHECK(results[2].success);
}

BOOST_AUTO_TEST_CASE(many_threads_at_once_each_get_their_answer) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  std::atomic<int> wrong{0};
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        auto v = t * 1000 + i;
        auto n = mgr.query(i % 2 ? "node1" : "node0", "SELECT $1::int AS v", {v})[0].get<int>(0);
        (n == v ? ok : wrong)++;
      }
    });
  for (auto& th : threads)
    th.join();
  BOOST_CHECK_EQUAL(ok.load(), 1600);
  BOOST_CHECK_EQUAL(wrong.load(), 0);
}

BOOST_AUTO_TEST_SUITE_END()

// A facade call runs the actors its request reaches first (supervisor,
// connection worker) on the caller's thread, and the reactor runs the worker
// that reads the answer on its own: neither waits for a scheduler thread.
// With an application's actor system whose only scheduler thread is busy for
// 3 s, single-node queries still answer at once.
BOOST_AUTO_TEST_CASE(queries_answer_while_every_scheduler_thread_is_busy) {
  caf::actor_system_config cfg;
  register_types(cfg);
  use_pgcm_scheduler(cfg);
  cfg.set("scheduler.max-threads", 1);
  caf::actor_system sys{cfg};
  {
    connection_manager mgr{sys, test::fast_options()};
    mgr.initialize({{"node0", test::node("node0")}});
    BOOST_REQUIRE_EQUAL(mgr.query("node0", "SELECT 1")[0].get<int>(0), 1);
    auto blocker = sys.spawn([](caf::event_based_actor*) -> caf::behavior {
      return {[](int ms) { std::this_thread::sleep_for(std::chrono::milliseconds{ms}); }};
    });
    caf::anon_send(blocker, 3000);
    std::this_thread::sleep_for(100ms); // the blocker now holds the only thread
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 20; ++i)
      BOOST_CHECK_EQUAL(mgr.query("node0", "SELECT $1::int", {i})[0].get<int>(0), i);
    if (test::fast_options().effective_inline_execution())
      BOOST_CHECK_LT(test::ms_since(start), 1500); // not after the blocker's 3 s
    else // PGCM_INLINE=0 (docs/threading.md I10): everything waits for the scheduler
      BOOST_CHECK_GE(test::ms_since(start), 2000);
    mgr.shutdown();
  }
}

namespace {

/// (route_atom, node_atom, id) through `self`: the node's handle, or the error.
caf::expected<node_api_actor> node_handle(caf::scoped_actor& self, const manager_api_actor& m,
                                          const std::string& id) {
  caf::expected<node_api_actor> out{caf::error{}};
  self->request(m, 10s, route_atom::value, node_atom::value, id)
      .receive([&](node_api_actor& h) { out = std::move(h); },
               [&](caf::error& e) { out = std::move(e); });
  return out;
}

/// What one event-based requester got for n queries sent at once to `h`.
struct handle_replies {
  int values = 0;
  std::vector<error_info> errors;
};

/// One requester actor sends `sql` n times at once to `h` (no CAF timeout:
/// pgcm's own deadline answers), counts the replies and reports them when
/// all n are in (the future's own wait bounds a hang).
std::future<handle_replies> send_many(caf::actor_system& sys, const node_api_actor& h,
                                      std::string sql, int n) {
  auto done = std::make_shared<std::promise<handle_replies>>();
  auto fut = done->get_future();
  sys.spawn([=](caf::event_based_actor* self) {
    auto got = std::make_shared<handle_replies>();
    auto left = std::make_shared<int>(n);
    auto one = [=] {
      if (--*left == 0) {
        done->set_value(*got);
        self->quit();
      }
    };
    for (int i = 0; i < n; ++i)
      self->request(h, caf::infinite, query_atom::value, sql, std::vector<param>{},
                    caf::timespan{10s})
          .then(
              [=](result_set&) {
                ++got->values;
                one();
              },
              [=](caf::error& e) {
                got->errors.push_back(to_error_info(e));
                one();
              });
  });
  return fut;
}

} // namespace

// The actor API's fast path (README, Actor API): the manager answers a node's
// handle once, queries go straight to it (no manager hop), with the same
// checks and errors as through the manager, one reply each; a removed node's
// handle answers an error (never a hang) and the manager then names the node.
BOOST_AUTO_TEST_CASE(actor_api_node_handle_queries_and_a_removed_node) {
  caf::actor_system_config cfg;
  register_types(cfg);
  use_pgcm_scheduler(cfg);
  caf::actor_system sys{cfg};
  connection_manager mgr{sys, test::fast_options()};
  mgr.initialize(test::all_nodes());
  auto m = manager_handle(mgr);
  {
    caf::scoped_actor self{sys};
    auto missing = node_handle(self, m, "nodeX");
    BOOST_REQUIRE(!missing);
    BOOST_CHECK(to_error_info(missing.error()).code == errc::node_not_found);
    BOOST_CHECK_NE(to_error_info(missing.error()).message.find("nodeX"), std::string::npos);

    auto h = node_handle(self, m, "node1");
    BOOST_REQUIRE(h);
    BOOST_REQUIRE(*h);
    auto ask = [&](std::string sql, std::vector<param> ps) {
      caf::expected<result_set> out{caf::error{}};
      self->request(*h, 15s, query_atom::value, std::move(sql), std::move(ps), caf::timespan{0})
          .receive([&](result_set& r) { out = std::move(r); },
                   [&](caf::error& e) { out = std::move(e); });
      return out;
    };
    auto r = ask("SELECT $1::int + 1", {41});
    BOOST_REQUIRE(r);
    BOOST_CHECK_EQUAL((*r)[0].get<int>(0), 42);
    BOOST_CHECK_EQUAL(r->node_id(), "node1");
    // The checks the manager makes before it delegates are made here too.
    auto tx = ask("BEGIN", {});
    BOOST_REQUIRE(!tx);
    BOOST_CHECK(to_error_info(tx.error()).code == errc::invalid_argument);
    BOOST_CHECK_NE(to_error_info(tx.error()).message.find("node1"), std::string::npos);
    auto bad = ask("SELECT * FROM no_such_table_here", {});
    BOOST_REQUIRE(!bad);
    BOOST_CHECK(to_error_info(bad.error()).code == errc::query_failed);

    // Many outstanding from one requester (more than pool.max): one reply each.
    auto many = send_many(sys, *h, "SELECT 1", 200).get();
    BOOST_CHECK_EQUAL(many.values, 200);
    BOOST_CHECK(many.errors.empty());

    // Removed while requests run: each still gets exactly one reply; after
    // the removal the handle answers an error at once, and the manager says
    // the node is gone, by name.
    auto during = send_many(sys, *h, "SELECT pg_sleep(0.3)", 12);
    std::this_thread::sleep_for(50ms);
    mgr.remove_node("node1");
    BOOST_REQUIRE(during.wait_for(20s) == std::future_status::ready);
    auto d = during.get();
    BOOST_CHECK_EQUAL(d.values + static_cast<int>(d.errors.size()), 12);
    for (auto& e : d.errors)
      BOOST_TEST_MESSAGE("during removal: " << e.message);
    auto start = std::chrono::steady_clock::now();
    auto after = ask("SELECT 1", {});
    BOOST_REQUIRE(!after);
    BOOST_TEST_MESSAGE("after removal: " << to_error_info(after.error()).message);
    BOOST_CHECK(after.error() != caf::sec::request_timeout);
    BOOST_CHECK_LT(test::ms_since(start), 5000);
    auto gone = node_handle(self, m, "node1");
    BOOST_REQUIRE(!gone);
    BOOST_CHECK(to_error_info(gone.error()).code == errc::node_not_found);
    BOOST_CHECK_NE(to_error_info(gone.error()).message.find("node1"), std::string::npos);
  }
  mgr.shutdown();
}

namespace {

/// Starts `mgr` with node0 (2 connections) and runs n single queries one
/// after another; returns how often other threads of this process woke
/// meanwhile.
long wakeups_for_single_queries(connection_manager& mgr, int n) {
  auto cfg = test::node("node0");
  cfg.pool.min = 2;
  mgr.initialize({{"node0", cfg}});
  BOOST_REQUIRE_EQUAL(mgr.query("node0", "SELECT 1")[0].get<int>(0), 1);
  std::this_thread::sleep_for(300ms); // let start-up events and reports settle
  auto before = other_threads_wakeups();
  for (int i = 0; i < n; ++i)
    BOOST_REQUIRE_EQUAL(mgr.query("node0", "SELECT $1::int", {i})[0].get<int>(0), i);
  BOOST_CHECK_GE(before, 0);
  return other_threads_wakeups() - before;
}

} // namespace

// With inline execution off (manager_options::inline_execution = false, or
// PGCM_INLINE=0) nothing is lent: the reactor wakes for every answer.
BOOST_AUTO_TEST_CASE(with_inline_execution_off_no_socket_is_lent) {
  auto opts = test::fast_options();
  opts.health_check_interval = 30s; // no probe traffic meanwhile
  opts.inline_execution = false;
  connection_manager mgr{opts};
  constexpr int n = 200;
  auto woken = wakeups_for_single_queries(mgr, n);
  BOOST_TEST_MESSAGE("other threads woke " << woken << " times for " << n << " queries");
  BOOST_CHECK_GE(woken, n); // the reactor at least once per answer
  mgr.shutdown();
}

// A facade query that is the only one on its connection is waited for on
// its socket by the caller itself (a leased connection, src/lease.hpp; or,
// without an idle connection, a lent socket, src/socket_lend.hpp): the
// caller sends it, sleeps in poll() and reads the answer; no other thread
// (the reactor, a scheduler thread) has to wake up for it, as for a raw
// libpq client.
BOOST_AUTO_TEST_CASE(a_facade_query_alone_on_its_connection_wakes_no_other_thread) {
  auto opts = test::fast_options();
  opts.health_check_interval = 30s; // no probe traffic meanwhile
  if (!opts.effective_inline_execution()) {
    BOOST_TEST_MESSAGE("PGCM_INLINE=0: no socket is lent (with_inline_execution_off_...)");
    return;
  }
  connection_manager mgr{opts};
  constexpr int n = 300;
  auto woken = wakeups_for_single_queries(mgr, n);
  BOOST_TEST_MESSAGE("other threads woke " << woken << " times for " << n << " queries");
  // Without the lend the reactor alone wakes once per query. A few wake-ups
  // remain: pool stats published at most every so often, report flushes.
  BOOST_CHECK_LT(woken, n / 4);
  // Backends the server ends while idle are noticed and replaced without a
  // query (the reactor watches an idle socket; a parked one is swept).
  auto opened = mgr.get_node("node0")->pool.connections_opened;
  cluster::get().admin_sql("node0",
                           "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE backend_type = 'client backend' AND application_name = '" +
                               test::app_name() + "'");
  BOOST_CHECK(test::eventually(
      [&] { return mgr.get_node("node0")->pool.connections_opened >= opened + 2; }, 5s));
  BOOST_CHECK_EQUAL(mgr.query("node0", "SELECT 7")[0].get<int>(0), 7);
  mgr.shutdown();
}
