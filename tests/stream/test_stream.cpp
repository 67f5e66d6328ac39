// Row streaming (query_stream, the actor protocol with credits) on a private
// one-node cluster (pgcm_cluster_stream): chunk sizes, peak memory against
// query(), back pressure from a slow callback, a callback that throws, the
// deadline, a backend terminated and the node stopped mid-stream, a sink
// that dies.
#define BOOST_TEST_MODULE test_stream
#include <boost/test/unit_test.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <thread>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include <pgcm/actors/cluster_manager.hpp>
#include <pgcm/messages/error.hpp>
#include <pgcm/messages/protocol.hpp>

#include "../integration/fixture.hpp"

using namespace std::chrono_literals;
using namespace pgcm;
using pgcm::test::cluster;

namespace {

// Long results below use a set-returning function in the select list: it
// streams its rows, where one in FROM would first materialize all of them.

struct manager_fixture {
  connection_manager mgr{test::fast_options()};
  manager_fixture() { mgr.initialize({{"node0", test::node("node0")}}); }
};

/// Statements of this process on node0 whose text contains `marker` and that
/// are still running, with their wait events ("active:ClientWrite").
std::string running(const std::string& marker) {
  return cluster::get().admin_sql(
      "node0", "SELECT string_agg(state || ':' || coalesce(wait_event, ''), ',') "
               "FROM pg_stat_activity WHERE application_name = '" +
                   test::app_name() + "' AND state = 'active' AND query LIKE '%" + marker +
                   "%' AND pid <> pg_backend_pid()");
}

struct stop : std::runtime_error {
  stop() : std::runtime_error("callback stops") {}
};

/// Runs test binary `name` (next to this one) and returns its stdout.
std::string run_sibling(const std::string& args) {
  char buf[4096];
  auto n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  buf[n] = '\0';
  std::string self = buf;
  auto cmd = self.substr(0, self.rfind('/')) + "/stream_rss " + args;
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  BOOST_REQUIRE(p != nullptr);
  while (fgets(buf, sizeof(buf), p) != nullptr)
    out += buf;
  BOOST_REQUIRE_MESSAGE(pclose(p) == 0, cmd << " failed: " << out);
  return out;
}

/// This process's resident memory now (VmRSS), in kB.
long rss_kb() {
  std::ifstream in{"/proc/self/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

long field(const std::string& out, const std::string& key) {
  auto at = out.find(key + " ");
  BOOST_REQUIRE_MESSAGE(at != std::string::npos, "no " << key << " in: " << out);
  return std::stol(out.substr(at + key.size() + 1));
}

} // namespace

BOOST_FIXTURE_TEST_CASE(every_chunk_has_chunk_rows_rows_except_the_last, manager_fixture) {
  std::vector<std::size_t> sizes;
  std::int64_t expected = 1;
  stream_options opts;
  opts.chunk_rows = 1000;
  auto n = mgr.query_stream(
      "node0", "SELECT g, g * 2 AS twice FROM generate_series(1, $1::int) g", {10'005},
      [&](const result_set& rows) {
        sizes.push_back(rows.size());
        BOOST_REQUIRE_EQUAL(rows.columns().size(), 2u);
        BOOST_CHECK_EQUAL(rows.columns()[1], "twice");
        BOOST_CHECK_EQUAL(rows.node_id(), "node0");
        for (auto r : rows)
          BOOST_REQUIRE_EQUAL(r.get<std::int64_t>(0), expected++);
      },
      opts);
  BOOST_CHECK_EQUAL(n, 10'005u);
  BOOST_REQUIRE_EQUAL(sizes.size(), 11u);
  for (std::size_t i = 0; i + 1 < sizes.size(); ++i)
    BOOST_CHECK_EQUAL(sizes[i], 1000u);
  BOOST_CHECK_EQUAL(sizes.back(), 5u);

  // Exactly a multiple: no empty chunk at the end.
  sizes.clear();
  opts.chunk_rows = 7;
  BOOST_CHECK_EQUAL(mgr.query_stream(
                        "node0", "SELECT generate_series(1, 21)", {},
                        [&](const result_set& rows) { sizes.push_back(rows.size()); }, opts),
                    21u);
  BOOST_CHECK((sizes == std::vector<std::size_t>{7, 7, 7}));

  // No rows: one empty chunk that still names the columns.
  sizes.clear();
  std::vector<std::string> cols;
  BOOST_CHECK_EQUAL(mgr.query_stream("node0", "SELECT 1 AS a, 2 AS b WHERE false", {},
                                     [&](const result_set& rows) {
                                       sizes.push_back(rows.size());
                                       cols = rows.columns();
                                     }),
                    0u);
  BOOST_CHECK((sizes == std::vector<std::size_t>{0}));
  BOOST_CHECK((cols == std::vector<std::string>{"a", "b"}));
}

BOOST_FIXTURE_TEST_CASE(errors_are_clear, manager_fixture) {
  auto ignore = [](const result_set&) {};
  try {
    mgr.query_stream("node0", "SELECT 1/(g - 5000) FROM generate_series(1, 10000) g", {}, ignore);
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::query_failed);
    BOOST_CHECK_EQUAL(e.sqlstate().value_or(""), "22012");
  }
  try {
    mgr.query_stream("nope", "SELECT 1", {}, ignore);
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::node_not_found);
  }
  stream_options zero;
  zero.chunk_rows = 0;
  BOOST_CHECK_THROW(mgr.query_stream("node0", "SELECT 1", {}, ignore, zero), error);
  // Still fine afterwards.
  BOOST_CHECK_EQUAL(mgr.query_stream("node0", "SELECT 1", {}, ignore), 1u);
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PGCM_TEST_UNDER_ASAN 1
#endif
#endif

BOOST_AUTO_TEST_CASE(two_million_rows_stream_in_little_memory_unlike_query) {
  auto streamed = run_sibling("stream");
  auto buffered = run_sibling("query");
  BOOST_CHECK_EQUAL(field(streamed, "rows"), 2'000'000);
  BOOST_CHECK_EQUAL(field(buffered, "rows"), 2'000'000);
  auto s = field(streamed, "peak_rss_kb");
  auto q = field(buffered, "peak_rss_kb");
  std::cout << "2,000,000 rows: peak RSS query_stream() " << s / 1024 << " MB, query() " << q / 1024
            << " MB" << std::endl;
#if defined(__SANITIZE_ADDRESS__) || defined(PGCM_TEST_UNDER_ASAN)
  // ASan keeps freed memory in its quarantine and adds shadow memory: the
  // RSS figures mean nothing there (the release build checks them).
  BOOST_TEST_MESSAGE("RSS bounds not checked under AddressSanitizer");
#else
  BOOST_CHECK_LT(s, 64 * 1024);
  BOOST_CHECK_GT(q, 2 * s);
#endif
}

BOOST_FIXTURE_TEST_CASE(a_slow_callback_holds_the_server_in_client_write, manager_fixture) {
  // 2 GB of rows; the callback stalls on the first chunk. The stream holds
  // about two chunks of 100 rows, so the server fills the socket buffers and
  // then waits for the client (ClientWrite), and stays there while the
  // callback stalls: neither the statement nor this process's memory moves.
  std::string seen;
  std::string later;
  long rss_before = 0;
  long rss_after = 0;
  stream_options opts;
  opts.chunk_rows = 100;
  std::uint64_t delivered = 0;
  BOOST_CHECK_THROW(
      mgr.query_stream(
          "node0", "SELECT generate_series(1, 2000000) AS g, repeat('x', 1000) AS pad_bp_marker",
          {},
          [&](const result_set& rows) {
            delivered += rows.size();
            test::eventually(
                [&] {
                  seen = running("pad_bp_marker");
                  return seen == "active:ClientWrite";
                },
                10s);
            rss_before = rss_kb();
            std::this_thread::sleep_for(2s);
            later = running("pad_bp_marker");
            rss_after = rss_kb();
            throw stop{};
          },
          opts),
      stop);
  BOOST_CHECK_EQUAL(seen, "active:ClientWrite");
  BOOST_CHECK_EQUAL(later, "active:ClientWrite");
  BOOST_CHECK_EQUAL(delivered, 100u);
  BOOST_TEST_MESSAGE("RSS while stalled: " << rss_before / 1024 << " MB, 2 s later "
                                           << rss_after / 1024 << " MB");
  BOOST_CHECK_LT(rss_after - rss_before, 32 * 1024);
  // The callback threw: the statement is cancelled on the server.
  BOOST_CHECK(test::eventually([] { return running("pad_bp_marker").empty(); }, 5s));
}

BOOST_FIXTURE_TEST_CASE(a_throwing_callback_cancels_the_statement, manager_fixture) {
  auto start = std::chrono::steady_clock::now();
  int calls = 0;
  BOOST_CHECK_THROW(mgr.query_stream("node0",
                                     "SELECT generate_series(1, 100000000) AS throw_marker", {},
                                     [&](const result_set&) {
                                       if (++calls == 3) throw stop{};
                                     }),
                    stop);
  BOOST_CHECK_EQUAL(calls, 3);
  BOOST_CHECK_LT(test::ms_since(start), 10'000);
  BOOST_CHECK(test::eventually([] { return running("throw_marker").empty(); }, 5s));
  // The node serves on, queries and streams alike.
  BOOST_CHECK_EQUAL(mgr.query("node0", "SELECT 5")[0].get<int>(0), 5);
  BOOST_CHECK_EQUAL(
      mgr.query_stream("node0", "SELECT generate_series(1, 10)", {}, [](const result_set&) {}),
      10u);
  BOOST_CHECK(
      test::eventually([&] { return mgr.get_pool_stats("node0")->in_flight_requests == 0; }, 5s));
}

BOOST_FIXTURE_TEST_CASE(the_deadline_covers_the_whole_stream, manager_fixture) {
  stream_options opts;
  opts.timeout = 1s;
  opts.chunk_rows = 10;
  auto start = std::chrono::steady_clock::now();
  try {
    mgr.query_stream(
        "node0", "SELECT generate_series(1, 100000000) AS deadline_marker", {},
        [](const result_set&) { std::this_thread::sleep_for(50ms); }, opts);
    BOOST_FAIL("no timeout");
  } catch (const error& e) {
    BOOST_CHECK_MESSAGE(e.code() == errc::query_timeout, e.what());
  }
  auto took = test::ms_since(start);
  BOOST_CHECK_GE(took, 900);
  BOOST_CHECK_LT(took, 8000);
  BOOST_CHECK(test::eventually([] { return running("deadline_marker").empty(); }, 5s));
}

BOOST_FIXTURE_TEST_CASE(a_terminated_backend_is_a_clear_error, manager_fixture) {
  bool terminated = false;
  std::uint64_t after = 0; // rows delivered after the terminate (those already sent)
  try {
    mgr.query_stream("node0", "SELECT generate_series(1, 100000000) AS term_marker", {},
                     [&](const result_set& rows) {
                       if (terminated) {
                         after += rows.size();
                         return;
                       }
                       terminated = true;
                       cluster::get().admin_sql(
                           "node0", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE query LIKE '%term_marker%' AND pid <> pg_backend_pid()");
                     });
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_CHECK_MESSAGE(e.code() == errc::connection_failed, e.what());
    BOOST_CHECK(std::string{e.what()}.find("node node0") != std::string::npos);
  }
  BOOST_TEST_MESSAGE("rows delivered after the terminate: " << after);
  BOOST_CHECK(test::answers(mgr, "node0"));
}

BOOST_FIXTURE_TEST_CASE(a_node_stopped_mid_stream_is_a_clear_error, manager_fixture) {
  auto start = std::chrono::steady_clock::now();
  bool stopped = false;
  try {
    mgr.query_stream("node0", "SELECT generate_series(1, 100000000) AS g", {},
                     [&](const result_set&) {
                       if (!stopped) {
                         stopped = true;
                         cluster::get().stop_node("node0", "immediate");
                       }
                     });
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_CHECK_MESSAGE(e.code() == errc::connection_failed, e.what());
  }
  BOOST_CHECK_LT(test::ms_since(start), 20'000);
  cluster::get().start_node("node0");
  BOOST_CHECK(test::eventually([&] { return test::answers(mgr, "node0"); }, 20s));
}

BOOST_FIXTURE_TEST_CASE(actor_protocol_sends_one_chunk_per_credit, manager_fixture) {
  auto& sys = mgr.system();
  auto spawned = spawn_manager(sys, test::fast_options());
  BOOST_REQUIRE(spawned);
  auto manager = *spawned;
  caf::scoped_actor self{sys};
  bool ok = false;
  self->request(manager, 10s, initialize_atom::value,
                std::vector<node_entry>{{"node0", test::node("node0")}})
      .receive([&](ok_atom) { ok = true; }, [](caf::error&) {});
  BOOST_REQUIRE(ok);
  stream_request spec;
  spec.id = 42;
  spec.chunk_rows = 10;
  spec.credit = 1;
  stream_control_actor control;
  self->request(manager, 10s, stream_atom::value, std::string{"node0"},
                std::string{"SELECT generate_series(1, 100)"}, std::vector<param>{}, spec,
                caf::actor_cast<stream_sink_actor>(self.ptr()))
      .receive([&](stream_control_actor& c) { control = c; },
               [](caf::error& e) { BOOST_FAIL(caf::to_string(e)); });
  BOOST_REQUIRE(control);
  int chunks = 0;
  auto take = [&](caf::timespan wait) {
    bool got = false;
    self->receive(
        [&](stream_rows_atom, std::uint64_t id, const result_set& rows) {
          BOOST_CHECK_EQUAL(id, 42u);
          BOOST_CHECK_EQUAL(rows.size(), 10u);
          ++chunks;
          got = true;
        },
        caf::after(wait) >> [] {});
    return got;
  };
  BOOST_CHECK(take(5s));
  // One credit, one chunk: nothing more comes until the next credit.
  BOOST_CHECK(!take(300ms));
  self->send(control, credit_atom::value, std::uint32_t{2});
  BOOST_CHECK(take(5s));
  BOOST_CHECK(take(5s));
  BOOST_CHECK(!take(300ms));
  BOOST_CHECK_EQUAL(chunks, 3);
  self->send(control, credit_atom::value, std::uint32_t{100});
  std::uint64_t total = 0;
  bool ended = false;
  while (!ended)
    self->receive(
        [&](stream_rows_atom, std::uint64_t, const result_set&) { ++chunks; },
        [&](stream_end_atom, std::uint64_t id, std::uint64_t rows, const caf::error& err) {
          BOOST_CHECK_EQUAL(id, 42u);
          BOOST_CHECK(!err);
          total = rows;
          ended = true;
        },
        caf::after(10s) >> [&] { ended = true; });
  BOOST_CHECK_EQUAL(chunks, 10);
  BOOST_CHECK_EQUAL(total, 100u);
  self->request(manager, 10s, shutdown_atom::value).receive([](ok_atom) {}, [](caf::error&) {});
}

BOOST_FIXTURE_TEST_CASE(a_sink_that_dies_cancels_its_stream, manager_fixture) {
  auto& sys = mgr.system();
  auto spawned = spawn_manager(sys, test::fast_options());
  BOOST_REQUIRE(spawned);
  auto manager = *spawned;
  {
    caf::scoped_actor boot{sys};
    boot->request(manager, 10s, initialize_atom::value,
                  std::vector<node_entry>{{"node0", test::node("node0")}})
        .receive([](ok_atom) {}, [](caf::error& e) { BOOST_FAIL(caf::to_string(e)); });
  }
  {
    caf::scoped_actor sink{sys};
    stream_request spec;
    spec.chunk_rows = 100;
    spec.credit = 1;
    bool started = false;
    sink->request(manager, 10s, stream_atom::value, std::string{"node0"},
                  std::string{"SELECT generate_series(1, 100000000) AS sink_marker"},
                  std::vector<param>{}, spec, caf::actor_cast<stream_sink_actor>(sink.ptr()))
        .receive([&](stream_control_actor&) { started = true; },
                 [](caf::error& e) { BOOST_FAIL(caf::to_string(e)); });
    BOOST_REQUIRE(started);
    BOOST_REQUIRE(test::eventually([] { return !running("sink_marker").empty(); }, 5s));
  } // the sink is gone without a word: the stream cancels its statement
  BOOST_CHECK(test::eventually([] { return running("sink_marker").empty(); }, 5s));
  caf::scoped_actor self{sys};
  self->request(manager, 10s, shutdown_atom::value).receive([](ok_atom) {}, [](caf::error&) {});
}
