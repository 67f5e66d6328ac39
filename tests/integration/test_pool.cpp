// The per-node pool on a real server: min connections opened and kept,
// growth on demand up to pool.max, waiting requests, a bounded wait queue,
// poisoned connections discarded, and backends terminated by the server.
#define BOOST_TEST_MODULE test_pool
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "fixture.hpp"

using namespace std::chrono_literals;
using namespace pgcm;
using pgcm::test::cluster;

namespace {

/// How the probe's statement starts: its connection carries our application_name too.
const std::string probe_sql_like = "SELECT pg_is_in_recovery(), %";

std::string ours() {
  return "application_name = '" + test::app_name() + "' AND backend_type = 'client backend'";
}

/// Pool connections of this process on `node` as the server sees them (the
/// health probe's own connection left out).
int pool_backends(const std::string& node) {
  return std::stoi(cluster::get().admin_sql(node, "SELECT count(*) FROM pg_stat_activity WHERE " +
                                                      ours() + " AND query NOT LIKE '" +
                                                      probe_sql_like + "'"));
}

/// Backend pids of this process's pool connections on `node`.
std::set<int> pool_pids(const std::string& node) {
  auto out = cluster::get().admin_sql(
      node, "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE " + ours() +
                " AND query NOT LIKE '" + probe_sql_like + "'");
  std::set<int> pids;
  std::size_t pos = 0;
  while (pos < out.size()) {
    auto comma = out.find(',', pos);
    if (comma == std::string::npos) comma = out.size();
    pids.insert(std::stoi(out.substr(pos, comma - pos)));
    pos = comma + 1;
  }
  return pids;
}

/// A manager over node0 only, with the given pool settings.
pool_stats stats(const connection_manager& mgr) {
  auto s = mgr.get_pool_stats("node0");
  BOOST_REQUIRE(s);
  return *s;
}

/// Releases every waiting thread at once, so that requests arrive together.
class start_gate {
public:
  void wait() {
    std::unique_lock<std::mutex> lock{mtx_};
    cv_.wait(lock, [this] { return open_; });
  }
  void open() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      open_ = true;
    }
    cv_.notify_all();
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  bool open_ = false;
};

/// What a batch of concurrent calls ended with.
struct outcomes {
  std::atomic<int> ok{0};
  std::atomic<int> exhausted{0};
  std::atomic<int> other{0};
  std::mutex mtx;
  std::vector<std::string> other_messages;
  void failed(const error& e) {
    if (e.code() == errc::pool_exhausted) {
      ++exhausted;
    } else {
      ++other;
      std::lock_guard<std::mutex> guard{mtx};
      other_messages.push_back(to_string(e.code()) + ": " + e.what());
    }
  }
  std::string others() {
    std::lock_guard<std::mutex> guard{mtx};
    std::string out;
    for (auto& m : other_messages)
      out += m + "\n";
    return out;
  }
};

/// Polls pool stats until stopped and keeps the maxima of the gauges.
class stats_watcher {
public:
  explicit stats_watcher(const connection_manager& mgr)
      : thread_([this, &mgr] {
          while (!stop_) {
            if (auto s = mgr.get_pool_stats("node0")) {
              max_total = std::max<std::int64_t>(max_total, s->total_connections);
              max_waiting = std::max<std::int64_t>(max_waiting, s->waiting_requests);
              max_in_flight = std::max<std::int64_t>(max_in_flight, s->in_flight_requests);
            }
            std::this_thread::sleep_for(10ms);
          }
        }) {}
  ~stats_watcher() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::atomic<std::int64_t> max_total{0};
  std::atomic<std::int64_t> max_waiting{0};
  std::atomic<std::int64_t> max_in_flight{0};

private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

} // namespace

BOOST_AUTO_TEST_SUITE(pool)

BOOST_AUTO_TEST_CASE(min_connections_are_opened_at_start) {
  auto mgr = test::node0_manager(pool_config{3, 6});
  BOOST_CHECK(test::eventually([] { return pool_backends("node0") == 3; }, 5s));
  BOOST_CHECK(test::eventually(
      [&] {
        auto s = stats(*mgr);
        return s.total_connections == 3 && s.idle_connections == 3 && s.connections_opened == 3;
      },
      5s));
  // Idle, one query at a time: the pool does not grow beyond min.
  for (int i = 0; i < 20; ++i)
    BOOST_CHECK_EQUAL(mgr->query("node0", "SELECT $1::int AS i", {i})[0].get<int>(0), i);
  BOOST_CHECK_EQUAL(pool_backends("node0"), 3);
  BOOST_CHECK(test::eventually(
      [&] {
        auto s = stats(*mgr);
        return s.queries_ok >= 20 && s.total_connections == 3 && s.in_flight_requests == 0;
      },
      5s));
}

BOOST_AUTO_TEST_CASE(grows_on_demand_up_to_max) {
  pool_config pc;
  pc.min = 1;
  pc.max = 4;
  pc.pipeline_depth = 1;
  auto mgr = test::node0_manager(pc);
  BOOST_REQUIRE(test::eventually([] { return pool_backends("node0") == 1; }, 5s));

  stats_watcher watch{*mgr};
  start_gate gate;
  outcomes out;
  std::vector<std::thread> threads;
  auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      gate.wait();
      for (int i = 0; i < 3; ++i) {
        try {
          mgr->query("node0", "SELECT pg_sleep(0.2)");
          ++out.ok;
        } catch (const error& e) {
          out.failed(e);
        }
      }
    });
  gate.open();
  // While the load runs the server sees exactly pool.max of our connections.
  BOOST_CHECK(test::eventually([] { return pool_backends("node0") == 4; }, 5s));
  for (auto& th : threads)
    th.join();
  auto took = test::ms_since(start);
  watch.stop();
  BOOST_CHECK_EQUAL(out.ok.load(), 24);
  BOOST_CHECK_MESSAGE(out.other == 0 && out.exhausted == 0, out.others());
  // 24 x 200 ms on 4 connections: at least 6 rounds.
  BOOST_CHECK_GE(took, 1100);
  // Never more than pool.max, on the server or in the stats.
  BOOST_CHECK_EQUAL(pool_backends("node0"), 4);
  BOOST_CHECK_LE(watch.max_total.load(), 4);
  BOOST_CHECK_LE(watch.max_in_flight.load(), 4);
  BOOST_CHECK_GT(watch.max_waiting.load(), 0);
  BOOST_CHECK(test::eventually(
      [&] {
        auto s = stats(*mgr);
        return s.queries_ok >= 24 && s.waiting_requests == 0 && s.in_flight_requests == 0;
      },
      5s));
  auto s = stats(*mgr);
  BOOST_CHECK_EQUAL(s.total_connections, 4);
  BOOST_CHECK_EQUAL(s.connections_opened, 4);
  BOOST_CHECK_EQUAL(s.idle_connections, 4);
  BOOST_CHECK_EQUAL(s.connections_discarded, 0);
}

BOOST_AUTO_TEST_CASE(requests_wait_for_a_busy_pool) {
  pool_config pc;
  pc.min = 1;
  pc.max = 2;
  pc.pipeline_depth = 1;
  auto mgr = test::node0_manager(pc);

  // Also watch the pool_stats events.
  std::atomic<std::int64_t> max_waiting_event{0};
  auto sub = mgr->on(event::pool_stats, [&](const node_event& e) {
    if (e.stats)
      max_waiting_event = std::max<std::int64_t>(max_waiting_event, e.stats->waiting_requests);
  });
  stats_watcher watch{*mgr};
  start_gate gate;
  outcomes out;
  std::vector<std::thread> threads;
  auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      gate.wait();
      try {
        mgr->query("node0", "SELECT pg_sleep(0.5)");
        ++out.ok;
      } catch (const error& e) {
        out.failed(e);
      }
    });
  gate.open();
  for (auto& th : threads)
    th.join();
  auto took = test::ms_since(start);
  watch.stop();
  BOOST_CHECK_EQUAL(out.ok.load(), 4);
  BOOST_CHECK_MESSAGE(out.other == 0 && out.exhausted == 0, out.others());
  // Two connections, four half-second sleeps: two rounds.
  BOOST_CHECK_GE(took, 950);
  BOOST_TEST_MESSAGE("4 x pg_sleep(0.5) on 2 connections took " << took << " ms");
  // Two requests waited while both connections were busy (three for the few
  // milliseconds the second connection took to open).
  BOOST_CHECK_GE(watch.max_waiting.load(), 2);
  BOOST_CHECK_LE(watch.max_waiting.load(), 3);
  BOOST_CHECK_GE(max_waiting_event.load(), 2);
  BOOST_CHECK_LE(max_waiting_event.load(), 3);
  BOOST_CHECK_EQUAL(watch.max_total.load(), 2);
  BOOST_CHECK_LE(watch.max_in_flight.load(), 2);
  BOOST_CHECK(test::eventually(
      [&] {
        auto s = stats(*mgr);
        return s.waiting_requests == 0 && s.in_flight_requests == 0 && s.queries_ok >= 4;
      },
      5s));
}

BOOST_AUTO_TEST_CASE(a_full_wait_queue_answers_pool_exhausted) {
  pool_config pc;
  pc.min = 1;
  pc.max = 1;
  pc.pipeline_depth = 1;
  pc.max_waiting = 2;
  auto mgr = test::node0_manager(pc);
  BOOST_REQUIRE(test::eventually([&] { return stats(*mgr).idle_connections == 1; }, 5s));

  // Six at once on one connection: one runs, two wait, three are rejected.
  start_gate gate;
  outcomes out;
  std::atomic<long long> slowest_rejection{0};
  std::mutex msg_mtx;
  std::string rejection_message;
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t)
    threads.emplace_back([&] {
      gate.wait();
      auto start = std::chrono::steady_clock::now();
      try {
        mgr->query("node0", "SELECT pg_sleep(0.6)");
        ++out.ok;
      } catch (const error& e) {
        out.failed(e);
        if (e.code() == errc::pool_exhausted) {
          auto took = test::ms_since(start);
          long long prev = slowest_rejection;
          while (took > prev && !slowest_rejection.compare_exchange_weak(prev, took)) {
          }
          std::lock_guard<std::mutex> guard{msg_mtx};
          rejection_message = e.what();
        }
      }
    });
  gate.open();
  for (auto& th : threads)
    th.join();
  BOOST_CHECK_EQUAL(out.ok.load(), 3);
  BOOST_CHECK_EQUAL(out.exhausted.load(), 3);
  BOOST_CHECK_MESSAGE(out.other == 0, out.others());
  // Rejections are immediate, not after waiting.
  BOOST_CHECK_LT(slowest_rejection.load(), 500);
  BOOST_CHECK(rejection_message.find("node0") != std::string::npos);
  BOOST_CHECK(rejection_message.find("exhausted") != std::string::npos);
  BOOST_CHECK(test::eventually(
      [&] {
        auto s = stats(*mgr);
        return s.requests_rejected == 3 && s.queries_ok >= 3 && s.waiting_requests == 0;
      },
      5s));
  // The pool works normally afterwards.
  BOOST_CHECK_EQUAL(mgr->query("node0", "SELECT 5 AS n")[0].get<int>(0), 5);
}

BOOST_AUTO_TEST_CASE(transaction_control_through_query_is_refused_and_keeps_the_connection) {
  pool_config pc;
  pc.min = 1;
  pc.max = 1;
  auto mgr = test::node0_manager(pc);
  auto rec = std::make_shared<test::event_recorder>();
  auto sub = mgr->on_any([rec](const node_event& e) { (*rec)(e); });
  auto pid_before = mgr->query("node0", "SELECT pg_backend_pid()")[0].get<int32_t>(0);
  BOOST_REQUIRE(test::eventually([&] { return stats(*mgr).connections_opened == 1; }, 5s));
  auto refused = [&](auto&& call) {
    try {
      call();
    } catch (const error& e) {
      BOOST_CHECK(e.code() == errc::invalid_argument);
      BOOST_CHECK_MESSAGE(std::string{e.what()}.find("with_transaction") != std::string::npos,
                          e.what());
      return true;
    }
    return false;
  };
  for (std::string sql :
       {"BEGIN", "begin isolation level serializable", "  -- c\n Start Transaction",
        "/* x */ BEGIN WORK", "COMMIT", "rollback", "END", "abort"}) {
    BOOST_CHECK_MESSAGE(refused([&] { mgr->query("node0", sql); }), sql);
    BOOST_CHECK_MESSAGE(refused([&] { mgr->query(route{target::primary}, sql); }), sql);
    BOOST_CHECK_MESSAGE(refused([&] { mgr->query_all(sql); }), sql);
  }
  // Not refused: statements that merely start with similar words.
  BOOST_CHECK_EQUAL(mgr->query("node0", "SELECT 'BEGIN'")[0].get<std::string>(0), "BEGIN");
  BOOST_CHECK_THROW(mgr->query("node0", "ROLLBACK TO SAVEPOINT x"), error); // 25P01 from server
  // The connection stays: same backend, nothing discarded, no disconnect.
  BOOST_CHECK_EQUAL(mgr->query("node0", "SELECT pg_backend_pid()")[0].get<int32_t>(0), pid_before);
  BOOST_CHECK_EQUAL(stats(*mgr).connections_discarded, 0);
  BOOST_CHECK_EQUAL(rec->count("node0", event::node_disconnected), 0u);
  BOOST_CHECK_EQUAL(test::server_connections("node0", "idle in transaction"), 0);
}

BOOST_AUTO_TEST_CASE(a_terminated_probe_connection_is_not_a_failed_probe) {
  // With a threshold of 1 a single failed probe turns the node unhealthy:
  // losing the probe's idle connection must not count as one.
  auto opts = test::fast_options();
  opts.unhealthy_threshold = 1;
  auto mgr = test::node0_manager(pool_config{}, opts);
  std::atomic<int> unhealthy_events{0};
  auto sub = mgr->on(event::node_health, [&](const node_event& e) {
    if (e.health && e.health->status != health_state::healthy) ++unhealthy_events;
  });
  auto probe_pid = [] {
    return cluster::get().admin_sql(
        "node0", "SELECT coalesce(min(pid)::text, '') FROM pg_stat_activity WHERE " + ours() +
                     " AND state = 'idle' AND query LIKE '" + probe_sql_like + "'");
  };
  for (int round = 0; round < 3; ++round) {
    BOOST_TEST_CONTEXT("round " << round) {
      std::string pid;
      BOOST_REQUIRE(test::eventually([&] { return !(pid = probe_pid()).empty(); }, 5s));
      BOOST_REQUIRE_EQUAL(
          cluster::get().admin_sql("node0", "SELECT pg_terminate_backend(" + pid + ")"), "t");
      // The next probe finds the connection dead and asks again on a new one.
      BOOST_REQUIRE(test::eventually(
          [&] {
            auto now = probe_pid();
            return !now.empty() && now != pid;
          },
          5s));
    }
  }
  auto h = mgr->get_health("node0");
  BOOST_REQUIRE(h);
  BOOST_CHECK(h->status == health_state::healthy);
  BOOST_CHECK_EQUAL(h->consecutive_failures, 0);
  BOOST_CHECK_EQUAL(unhealthy_events.load(), 0);
}

BOOST_AUTO_TEST_CASE(terminated_backends_are_replaced_without_failing_requests) {
  pool_config pc;
  pc.min = 3;
  pc.max = 6;
  auto mgr = test::node0_manager(pc);
  std::atomic<int> unhealthy_events{0};
  auto sub = mgr->on(event::node_health, [&](const node_event& e) {
    if (e.health && e.health->status != health_state::healthy) ++unhealthy_events;
  });
  BOOST_REQUIRE(test::eventually([] { return pool_backends("node0") == 3; }, 5s));
  for (int i = 0; i < 10; ++i)
    mgr->query("node0", "SELECT 1");
  auto old_pids = pool_pids("node0");
  BOOST_REQUIRE_EQUAL(old_pids.size(), 3u);

  for (int round = 0; round < 3; ++round) {
    BOOST_TEST_CONTEXT("round " << round) {
      // The pool is back to min after the previous round.
      BOOST_REQUIRE(test::eventually([] { return pool_backends("node0") >= 3; }, 5s));
      // Terminate every idle backend of ours (the probe's too), and wait
      // until they are gone on the server: the pool still holds their
      // connections, now dead.
      auto killed = cluster::get().admin_sql(
          "node0", "SELECT string_agg(pid::text, ',') FROM (SELECT pid, pg_terminate_backend(pid) "
                   "FROM pg_stat_activity WHERE application_name = '" +
                       test::app_name() + "') t");
      BOOST_CHECK_GE(std::count(killed.begin(), killed.end(), ',') + 1, 3);
      BOOST_REQUIRE(test::eventually(
          [&] {
            return cluster::get().admin_sql("node0",
                                            "SELECT count(*) FROM pg_stat_activity WHERE pid IN (" +
                                                killed + ")") == "0";
          },
          5s));
      // Right away: sequential and concurrent queries all succeed (dead
      // connections are noticed and replaced, requests handed back).
      std::atomic<int> ok{0};
      outcomes out;
      for (int i = 0; i < 5; ++i) {
        try {
          mgr->query("node0", "SELECT $1::int AS i", {i});
          ++ok;
        } catch (const error& e) {
          out.failed(e);
        }
      }
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
          for (int i = 0; i < 10; ++i) {
            try {
              mgr->query("node0", "SELECT $1::int AS i", {i});
              ++ok;
            } catch (const error& e) {
              out.failed(e);
            }
          }
        });
      for (auto& th : threads)
        th.join();
      BOOST_CHECK_EQUAL(ok.load(), 45);
      BOOST_CHECK_MESSAGE(out.other == 0 && out.exhausted == 0, out.others());
    }
  }
  // The pool is back to (at least) min, on new backends only.
  BOOST_CHECK(test::eventually([] { return pool_backends("node0") >= 3; }, 5s));
  auto new_pids = pool_pids("node0");
  for (int pid : old_pids)
    BOOST_CHECK_MESSAGE(new_pids.count(pid) == 0, "old backend " << pid << " still in use");
  BOOST_CHECK(test::eventually([&] { return stats(*mgr).connections_discarded >= 3; }, 5s));
  // The node stayed healthy throughout.
  auto h = mgr->get_health("node0");
  BOOST_REQUIRE(h);
  BOOST_CHECK(h->status == health_state::healthy);
  BOOST_CHECK_EQUAL(unhealthy_events.load(), 0);
}

BOOST_AUTO_TEST_CASE(pipelined_requests_count_as_waiting) {
  // Issue 11: six concurrent sleeps on two connections; four of them are not
  // executing (queued or pipelined), and the stats say so.
  pool_config pc;
  pc.min = 2;
  pc.max = 2;
  auto mgr = test::node0_manager(pc);
  BOOST_REQUIRE(test::eventually([&] { return stats(*mgr).idle_connections == 2; }, 5s));
  stats_watcher watch{*mgr};
  start_gate gate;
  outcomes out;
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t)
    threads.emplace_back([&] {
      gate.wait();
      try {
        mgr->query("node0", "SELECT pg_sleep(0.4)");
        ++out.ok;
      } catch (const error& e) {
        out.failed(e);
      }
    });
  gate.open();
  for (auto& th : threads)
    th.join();
  watch.stop();
  BOOST_CHECK_EQUAL(out.ok.load(), 6);
  BOOST_CHECK_MESSAGE(out.other == 0 && out.exhausted == 0, out.others());
  BOOST_CHECK_GE(watch.max_waiting.load(), 4);
  BOOST_CHECK_LE(watch.max_waiting.load(), 4);
  BOOST_CHECK(test::eventually(
      [&] {
        auto s = stats(*mgr);
        return s.waiting_requests == 0 && s.in_flight_requests == 0 && s.queries_ok >= 6;
      },
      5s));
}

BOOST_AUTO_TEST_CASE(no_head_of_line_blocking_behind_a_long_statement) {
  // Issue 11: pool.max 2, one pg_sleep(3) running; a SELECT 1 sent 300 ms
  // later is not pipelined behind it: the pool opens its second connection.
  {
    pool_config pc;
    pc.min = 1;
    pc.max = 2;
    auto mgr = test::node0_manager(pc);
    BOOST_REQUIRE(test::eventually([&] { return stats(*mgr).idle_connections == 1; }, 5s));
    std::thread sleeper([&] { mgr->query("node0", "SELECT pg_sleep(3)"); });
    std::this_thread::sleep_for(300ms);
    auto start = std::chrono::steady_clock::now();
    BOOST_CHECK_EQUAL(mgr->query("node0", "SELECT 1 AS n")[0].get<int>(0), 1);
    auto took = test::ms_since(start);
    BOOST_TEST_MESSAGE("SELECT 1 beside a running pg_sleep(3) took " << took << " ms");
    BOOST_CHECK_LT(took, 1500);
    sleeper.join();
  }
  // pool.max 1: it cannot grow, so the SELECT 1 waits for the connection;
  // queued (not pipelined behind a statement running for 300 ms), and the
  // stats show it waiting.
  {
    pool_config pc;
    pc.min = 1;
    pc.max = 1;
    auto mgr = test::node0_manager(pc);
    BOOST_REQUIRE(test::eventually([&] { return stats(*mgr).idle_connections == 1; }, 5s));
    std::thread sleeper([&] { mgr->query("node0", "SELECT pg_sleep(1.5)"); });
    std::this_thread::sleep_for(300ms);
    std::atomic<bool> done{false};
    std::thread fast([&] {
      mgr->query("node0", "SELECT 1");
      done = true;
    });
    BOOST_CHECK(test::eventually([&] { return stats(*mgr).waiting_requests == 1 || done; }, 1s));
    BOOST_CHECK(!done);
    // Queued in pgcm, not on the connection: one statement in flight.
    auto s = stats(*mgr);
    BOOST_CHECK_EQUAL(s.waiting_requests, 1);
    BOOST_CHECK_EQUAL(s.in_flight_requests, 1);
    fast.join();
    sleeper.join();
    BOOST_CHECK(test::eventually([&] { return stats(*mgr).waiting_requests == 0; }, 5s));
  }
}

BOOST_AUTO_TEST_SUITE_END()
