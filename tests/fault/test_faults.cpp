// Fault injection (CTest label "fault"): a TCP fault proxy in front of a node
// blackholes, delays, resets or refuses its traffic. Every request gets exactly
// one answer, with the right code, within its deadline plus a margin, and the
// node recovers when the fault is cleared.
#define BOOST_TEST_MODULE test_faults
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <mutex>
#include <thread>

#include "fault_proxy.hpp"
#include "fixture.hpp"

using namespace std::chrono_literals;
using namespace pgcm;
using pgcm::test::cluster;
using pgcm::test::fault_proxy;

namespace {

/// node0 reached through a fault proxy ("proxied"), plus node1 directly.
struct proxied_fixture {
  fault_proxy proxy{cluster::get().port("node0")};
  manager_options opts = [] {
    auto o = test::fast_options();
    o.connect_timeout = 1000ms;
    o.health_check_timeout = 500ms;
    return o;
  }();
  connection_manager mgr{opts};

  proxied_fixture() {
    auto cfg = test::node("node0");
    cfg.port = proxy.port();
    cfg.pool.min = 2;
    cfg.pool.max = 4;
    mgr.initialize({{"proxied", cfg}, {"direct", test::node("node1")}});
  }

  health_state status(const std::string& id) {
    auto h = mgr.get_health(id);
    return h ? h->status : health_state::unknown;
  }

  bool recovers() {
    std::string last;
    bool ok = test::eventually([&] { return status("proxied") == health_state::healthy; }, 15s) &&
              test::eventually([&] { return test::answers(mgr, "proxied", 2s, &last); }, 15s);
    if (!ok) {
      auto n = mgr.get_node("proxied");
      BOOST_TEST_MESSAGE(
          "not recovered: status "
          << to_string(n->health.status) << ", last error " << n->health.last_error.value_or("-")
          << ", last query error " << last << ", total " << n->pool.total_connections << ", idle "
          << n->pool.idle_connections << ", waiting " << n->pool.waiting_requests << ", in flight "
          << n->pool.in_flight_requests << ", opened " << n->pool.connections_opened
          << ", connect failures " << n->pool.connect_failures << ", proxy connections "
          << proxy.connections());
    }
    return ok;
  }
};

/// Runs `n` calls of `f` on threads; returns each call's outcome code (-1 = ok)
/// and how long the slowest took.
struct outcome {
  std::vector<int> codes;
  long long max_ms = 0;
};

template <class F> outcome concurrently(int n, F f) {
  outcome out;
  out.codes.assign(static_cast<std::size_t>(n), -2);
  std::mutex mtx;
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      auto start = std::chrono::steady_clock::now();
      int code = -1;
      try {
        f(i);
      } catch (const error& e) {
        code = static_cast<int>(e.code());
      }
      std::lock_guard<std::mutex> guard{mtx};
      out.codes[static_cast<std::size_t>(i)] = code;
      out.max_ms = std::max(out.max_ms, test::ms_since(start));
    });
  for (auto& t : threads)
    t.join();
  return out;
}

int count(const std::vector<int>& codes, int code) {
  return static_cast<int>(std::count(codes.begin(), codes.end(), code));
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(faults, proxied_fixture)

BOOST_AUTO_TEST_CASE(blackholed_node_during_queries) {
  proxy.set(fault_proxy::mode::blackhole);
  auto r = concurrently(6, [&](int) { mgr.query("proxied", "SELECT 1", {}, 700ms); });
  // Each answered once, by its deadline plus a margin, with a timeout or a
  // connection error (the pool notices the silence).
  BOOST_CHECK_EQUAL(count(r.codes, -2), 0);
  BOOST_CHECK_EQUAL(count(r.codes, -1), 0);
  for (auto c : r.codes)
    BOOST_CHECK(c == static_cast<int>(errc::query_timeout) ||
                c == static_cast<int>(errc::connection_failed));
  BOOST_CHECK_LT(r.max_ms, 700 + 1500);
  // The other node is not disturbed.
  BOOST_CHECK_EQUAL(mgr.query("direct", "SELECT 2")[0].get<int>(0), 2);
  // Probes have their own deadline: the node turns unhealthy, it does not hang.
  BOOST_CHECK(test::eventually([&] { return status("proxied") == health_state::unhealthy; }, 10s));
  auto h = mgr.get_health("proxied");
  BOOST_REQUIRE(h && h->last_error);
  BOOST_CHECK(h->last_error->find("timeout") != std::string::npos);
  // A fan-out answers for every node by the deadline.
  auto start = std::chrono::steady_clock::now();
  auto all = mgr.query_all("SELECT 1", {}, 600ms);
  BOOST_CHECK_LT(test::ms_since(start), 600 + 1500);
  BOOST_REQUIRE_EQUAL(all.size(), 2u);
  BOOST_CHECK(!all[0].success);
  BOOST_CHECK(all[1].success);
  proxy.set(fault_proxy::mode::pass);
  BOOST_CHECK(recovers());
}

BOOST_AUTO_TEST_CASE(a_caller_waiting_on_its_socket_gets_its_timeout_from_a_silent_node) {
  // One query at a time: the caller waits on the connection's socket itself
  // (a leased connection, src/lease.hpp, or a lent socket,
  // src/socket_lend.hpp). The server never answers, so the socket never
  // turns readable: the caller must get query_timeout at the deadline (the
  // cancel cannot reach the server either), not at its own guard (the
  // deadline plus 2 s) nor after the cancel grace.
  BOOST_REQUIRE_EQUAL(mgr.query("proxied", "SELECT 1")[0].get<int>(0), 1);
  proxy.set(fault_proxy::mode::blackhole);
  std::this_thread::sleep_for(50ms);
  for (int i = 0; i < 2; ++i) {
    auto r = concurrently(1, [&](int) { mgr.query("proxied", "SELECT 1", {}, 300ms); });
    BOOST_TEST_CONTEXT("query " << i << " took " << r.max_ms << " ms") {
      BOOST_CHECK(r.codes[0] == static_cast<int>(errc::query_timeout) ||
                  r.codes[0] == static_cast<int>(errc::connection_failed));
      BOOST_CHECK_GE(r.max_ms, 250);
      BOOST_CHECK_LT(r.max_ms, 300 + 1000);
    }
  }
  proxy.set(fault_proxy::mode::pass);
  BOOST_CHECK(recovers());
}

BOOST_AUTO_TEST_CASE(blackholed_during_connect_and_removal_is_not_held_up) {
  proxy.set(fault_proxy::mode::blackhole);
  // Connections opened now hang in the handshake: the connect deadline ends them.
  auto cfg = test::node("node0");
  cfg.port = proxy.port();
  auto start = std::chrono::steady_clock::now();
  mgr.add_node("late", cfg); // returns after its first attempt failed
  BOOST_CHECK_LT(test::ms_since(start), 1000 + 500 + 3000);
  auto h = mgr.get_health("late");
  BOOST_REQUIRE(h);
  BOOST_CHECK(h->status == health_state::unhealthy);
  // Timed-out statements are cancelled with PQcancel, which blocks on a
  // blackholed host in PostgreSQL 15: it must not hold up replies or removal.
  auto r = concurrently(3, [&](int) { mgr.query("proxied", "SELECT pg_sleep(5)", {}, 300ms); });
  BOOST_CHECK_LT(r.max_ms, 300 + 1500);
  start = std::chrono::steady_clock::now();
  mgr.remove_node("late");
  mgr.remove_node("proxied");
  BOOST_CHECK_LT(test::ms_since(start), 2 * (opts.shutdown_timeout.count() + 1500));
  proxy.set(fault_proxy::mode::pass);
}

BOOST_AUTO_TEST_CASE(delayed_node_in_fan_out_gives_partial_results) {
  proxy.set(fault_proxy::mode::delay, 1500ms);
  auto start = std::chrono::steady_clock::now();
  auto all = mgr.query_all("SELECT 1", {}, 500ms);
  auto took = test::ms_since(start);
  BOOST_CHECK_LT(took, 500 + 1500);
  BOOST_REQUIRE_EQUAL(all.size(), 2u);
  BOOST_CHECK(!all[0].success);
  BOOST_CHECK(all[0].error->code == errc::query_timeout);
  BOOST_CHECK(all[1].success);
  proxy.set(fault_proxy::mode::pass);
  BOOST_CHECK(recovers());
}

BOOST_AUTO_TEST_CASE(reset_mid_query) {
  std::thread t{[&] {
    std::this_thread::sleep_for(300ms);
    proxy.set(fault_proxy::mode::reset);
  }};
  auto r = concurrently(1, [&](int) { mgr.query("proxied", "SELECT pg_sleep(3)", {}, 10s); });
  t.join();
  BOOST_CHECK_EQUAL(r.codes[0], static_cast<int>(errc::connection_failed));
  BOOST_CHECK_LT(r.max_ms, 2000); // at the reset, not at the timeout
  proxy.set(fault_proxy::mode::pass);
  BOOST_CHECK(recovers());
}

BOOST_AUTO_TEST_CASE(refused_then_back) {
  proxy.set(fault_proxy::mode::refuse);
  proxy.set(fault_proxy::mode::reset); // drop what is open
  proxy.set(fault_proxy::mode::refuse);
  BOOST_CHECK(test::eventually([&] { return status("proxied") == health_state::unhealthy; }, 10s));
  // While the node is down, requests fail fast with connection_failed.
  auto start = std::chrono::steady_clock::now();
  BOOST_CHECK(test::eventually(
      [&] {
        try {
          mgr.query("proxied", "SELECT 1", {}, 5s);
          return false;
        } catch (const error& e) {
          return e.code() == errc::connection_failed;
        }
      },
      5s));
  BOOST_CHECK_LT(test::ms_since(start), 4000);
  // Backoff: one attempt per step, not one per pool slot.
  auto before = mgr.get_pool_stats("proxied")->connect_failures;
  std::this_thread::sleep_for(2s);
  auto attempts = mgr.get_pool_stats("proxied")->connect_failures - before;
  BOOST_TEST_MESSAGE("connect failures in 2 s: " << attempts);
  BOOST_CHECK_LE(attempts, 12); // backoff capped at 500 ms here: ~4-8 attempts
  proxy.set(fault_proxy::mode::pass);
  BOOST_CHECK(recovers());
}

BOOST_AUTO_TEST_CASE(no_leaked_server_connections_after_faults) {
  proxy.set(fault_proxy::mode::reset);
  proxy.set(fault_proxy::mode::pass);
  BOOST_CHECK(recovers());
  concurrently(8, [&](int) { mgr.query("proxied", "SELECT pg_sleep(0.1)"); });
  // At most pool.max + the probe's connection stay open on the server.
  BOOST_CHECK(test::eventually([&] { return test::server_connections("node0") <= 4 + 1; }, 10s));
}

BOOST_AUTO_TEST_CASE(subscriber_that_throws_or_dies_never_disturbs_the_manager) {
  std::atomic<int> good{0};
  auto bad = mgr.on_any([](const node_event&) { throw std::runtime_error("subscriber bug"); });
  auto ok = mgr.on(event::node_added, [&](const node_event&) { ++good; });
  mgr.add_node("extra", test::node("node2"));
  BOOST_CHECK(test::eventually([&] { return good == 1; }, 5s));
  BOOST_CHECK_EQUAL(mgr.query("extra", "SELECT 3")[0].get<int>(0), 3);
  mgr.remove_node("extra");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(wrong_password_and_missing_database) {
  auto opts = test::fast_options();
  connection_manager mgr{opts};
  auto wrong = test::node("node0");
  wrong.password = "definitely-not-the-password";
  auto missing = test::node("node1");
  missing.database = "no_such_database";
  mgr.initialize({{"wrong", wrong}, {"missing", missing}});
  auto hw = mgr.get_health("wrong");
  auto hm = mgr.get_health("missing");
  BOOST_REQUIRE(hw && hm);
  BOOST_CHECK(hw->status == health_state::unhealthy);
  BOOST_CHECK(hm->status == health_state::unhealthy);
  BOOST_CHECK(hw->last_error.value_or("").find("password authentication failed") !=
              std::string::npos);
  BOOST_CHECK(hm->last_error.value_or("").find("no_such_database") != std::string::npos);
  BOOST_CHECK(hw->last_error.value_or("").find("definitely-not-the-password") == std::string::npos);
  try {
    mgr.query("wrong", "SELECT 1");
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::connection_failed);
    BOOST_CHECK(std::string{e.what()}.find("wrong") != std::string::npos);
  }
  // No reconnect storm: backoff (50 ms doubling to 500 ms) bounds the attempts.
  auto before = mgr.get_pool_stats("wrong")->connect_failures;
  std::this_thread::sleep_for(2s);
  auto attempts = mgr.get_pool_stats("wrong")->connect_failures - before;
  BOOST_TEST_MESSAGE("attempts in 2 s: " << attempts);
  BOOST_CHECK_LE(attempts, 12);
}

BOOST_AUTO_TEST_CASE(immediate_stop_during_load_then_restart) {
  connection_manager mgr{test::fast_options()};
  mgr.initialize({{"node2", test::node("node2")}});
  struct restart_guard {
    ~restart_guard() {
      try {
        cluster::get().start_node("node2");
      } catch (...) {
      }
    }
  } guard;
  std::atomic<bool> stop{false};
  std::atomic<int> answered{0};
  std::atomic<int> wrong_code{0};
  std::vector<std::thread> load;
  for (int t = 0; t < 4; ++t)
    load.emplace_back([&] {
      while (!stop) {
        try {
          mgr.query("node2", "SELECT pg_sleep(0.01)", {}, 2s);
        } catch (const error& e) {
          if (e.code() != errc::connection_failed && e.code() != errc::query_timeout &&
              e.code() != errc::query_failed)
            ++wrong_code;
        }
        ++answered;
      }
    });
  std::this_thread::sleep_for(300ms);
  cluster::get().stop_node("node2", "immediate");
  std::this_thread::sleep_for(1s);
  cluster::get().start_node("node2");
  BOOST_CHECK(test::eventually([&] { return test::answers(mgr, "node2", 2s); }, 20s));
  stop = true;
  for (auto& t : load)
    t.join(); // every call returned: nothing hung
  BOOST_CHECK_GT(answered.load(), 0);
  BOOST_CHECK_EQUAL(wrong_code.load(), 0);
  BOOST_CHECK(test::eventually(
      [&] { return mgr.get_health("node2")->status == health_state::healthy; }, 10s));
}

BOOST_AUTO_TEST_CASE(connections_severed_while_idle_do_not_fail_the_probe) {
  // A middlebox dropping idle connections says nothing about the node: the
  // probe finds its connection gone, asks again on a new one and stays
  // healthy, even with a threshold of one failed probe.
  fault_proxy proxy{cluster::get().port("node0")};
  auto opts = test::fast_options();
  opts.unhealthy_threshold = 1;
  connection_manager mgr{opts};
  auto cfg = test::node("node0");
  cfg.port = proxy.port();
  cfg.pool.min = 1;
  cfg.pool.max = 2;
  mgr.initialize({{"severed", cfg}});
  std::atomic<int> unhealthy_events{0};
  auto sub = mgr.on(event::node_health, [&](const node_event& e) {
    if (e.health && e.health->status != health_state::healthy) ++unhealthy_events;
  });
  for (int round = 0; round < 3; ++round) {
    BOOST_TEST_CONTEXT("round " << round) {
      auto severed_at = std::chrono::system_clock::now();
      proxy.set(fault_proxy::mode::sever);
      // A probe ran on the severed connection and answered.
      BOOST_REQUIRE(
          test::eventually([&] { return mgr.get_health("severed")->last_check > severed_at; }, 5s));
      auto h = mgr.get_health("severed");
      BOOST_CHECK(h->status == health_state::healthy);
      BOOST_CHECK_EQUAL(h->consecutive_failures, 0);
      BOOST_CHECK_MESSAGE(!h->last_error, h->last_error.value_or(""));
    }
  }
  BOOST_CHECK_EQUAL(unhealthy_events.load(), 0);
  // The pool's severed connection is noticed on use and replaced.
  BOOST_CHECK(test::eventually([&] { return test::answers(mgr, "severed", 2s); }, 10s));
}
