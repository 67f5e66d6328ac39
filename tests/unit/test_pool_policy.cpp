#define BOOST_TEST_MODULE test_pool_policy
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "pool_policy.hpp"
#include "worker_phase.hpp"

using namespace std::chrono;
using namespace pgcm::detail;

namespace pgcm::detail {
std::ostream& operator<<(std::ostream& os, node_state s) {
  return os << to_string(s);
}
std::ostream& operator<<(std::ostream& os, worker_phase p) {
  return os << to_string(p);
}
std::ostream& operator<<(std::ostream& os, pool_reject r) {
  return os << static_cast<int>(r);
}
} // namespace pgcm::detail

namespace {

constexpr std::int64_t ms = 1'000'000;

/// Records what the policy asks for; plays the workers by hand.
struct fake_shell {
  struct request {
    int id = 0;
  };
  using handle = std::uint32_t; // the worker id
  struct counters {
    std::atomic<std::int64_t> answered{0};
    std::atomic<bool> report_answers{false};
    std::atomic<std::int64_t> leased{0};
    std::atomic<std::int64_t> head_since_ns{0};
  };

  std::map<std::uint32_t, std::shared_ptr<counters>> spawned;
  std::vector<std::pair<std::uint32_t, int>> sent; // (worker, request)
  std::vector<std::pair<int, pool_reject>> rejected;
  std::vector<std::int64_t> armed;
  int resolves = 0;
  std::vector<bool> connected_events;
  int first_done = 0;
  int stopped_calls = 0;
  std::vector<std::uint32_t> killed;
  std::vector<std::int64_t> backoffs;

  handle spawn(std::uint32_t id, std::shared_ptr<counters> c) {
    spawned[id] = std::move(c);
    return id;
  }
  void send(const handle& w, request&& r) { sent.emplace_back(w, r.id); }
  void reject(request&& r, pool_reject why) { rejected.emplace_back(r.id, why); }
  void arm(std::int64_t at) { armed.push_back(at); }
  void resolve() { ++resolves; }
  void connected(bool c) { connected_events.push_back(c); }
  void first_attempt_done() { ++first_done; }
  void stopped() { ++stopped_calls; }
  void kill(const handle& w) { killed.push_back(w); }
  void connect_failed(const std::string&, int, std::int64_t next_in_ns) {
    backoffs.push_back(next_in_ns);
  }

  /// Worker `id` answered one more request.
  void answer(std::uint32_t id) { ++spawned.at(id)->answered; }
};

using policy = pool_policy<fake_shell>;

pool_limits limits(int min, int max, int depth = 1, int max_waiting = 10) {
  pool_limits l;
  l.min = min;
  l.max = max;
  l.pipeline_depth = depth;
  l.max_waiting = max_waiting;
  l.backoff_initial = milliseconds{100};
  l.backoff_max = milliseconds{1000};
  return l;
}

const std::int64_t t0 = 1000 * ms;
const std::int64_t far = t0 + 60'000 * ms; // a deadline that does not pass

struct fixture {
  fake_shell shell;
  std::unique_ptr<policy> pool;

  void make(pool_limits l, bool needs_dns = false, std::uint32_t seed = 1) {
    pool = std::make_unique<policy>(shell, l, needs_dns, seed);
  }

  /// Starts and opens the first `n` connections (ids 1..n).
  void start_up(int n, std::int64_t now = t0) {
    pool->on_start(now, true);
    for (std::uint32_t id = 1; id <= static_cast<std::uint32_t>(n); ++id)
      pool->on_ready(now, id);
  }
};

} // namespace

BOOST_AUTO_TEST_CASE(legal_transitions_table) {
  using s = node_state;
  BOOST_CHECK(legal_transition(s::starting, s::up));
  BOOST_CHECK(legal_transition(s::starting, s::backoff));
  BOOST_CHECK(legal_transition(s::up, s::reconnecting));
  BOOST_CHECK(legal_transition(s::backoff, s::reconnecting));
  BOOST_CHECK(legal_transition(s::reconnecting, s::up));
  BOOST_CHECK(legal_transition(s::up, s::draining));
  BOOST_CHECK(legal_transition(s::draining, s::stopped));
  // Rejected: back to starting, leaving a stop, out of stopped.
  BOOST_CHECK(!legal_transition(s::up, s::starting));
  BOOST_CHECK(!legal_transition(s::backoff, s::starting));
  BOOST_CHECK(!legal_transition(s::draining, s::up));
  BOOST_CHECK(!legal_transition(s::draining, s::backoff));
  BOOST_CHECK(!legal_transition(s::stopped, s::up));
  BOOST_CHECK(!legal_transition(s::stopped, s::draining));
  BOOST_CHECK(!legal_transition(s::starting, s::stopped)); // a stop goes through draining
}

#ifdef NDEBUG
// Debug builds abort on an illegal move (assert); release builds log,
// count and still move.
BOOST_FIXTURE_TEST_CASE(illegal_transition_counted_in_release, fixture) {
  make(limits(1, 1));
  BOOST_CHECK(pool->transition(node_state::up));
  BOOST_CHECK_EQUAL(pool->illegal_transitions(), 0);
  BOOST_CHECK(!pool->transition(node_state::starting));
  BOOST_CHECK_EQUAL(pool->illegal_transitions(), 1);
}
#endif

BOOST_FIXTURE_TEST_CASE(first_start_opens_min_at_once, fixture) {
  make(limits(3, 5));
  BOOST_CHECK_EQUAL(pool->state(), node_state::starting);
  pool->on_start(t0, true);
  BOOST_CHECK_EQUAL(shell.spawned.size(), 3u);
  BOOST_CHECK_EQUAL(pool->state(), node_state::starting);
  pool->on_ready(t0, 2);
  BOOST_CHECK_EQUAL(pool->state(), node_state::up);
  BOOST_CHECK_EQUAL(shell.first_done, 1);
  BOOST_REQUIRE_EQUAL(shell.connected_events.size(), 1u);
  BOOST_CHECK(shell.connected_events[0]);
  pool->on_ready(t0, 1);
  pool->on_ready(t0, 3);
  BOOST_CHECK_EQUAL(shell.first_done, 1);
  BOOST_CHECK_EQUAL(shell.connected_events.size(), 1u);
  BOOST_CHECK_EQUAL(pool->refreshed_stats().idle_connections, 3);
  BOOST_CHECK_EQUAL(pool->stats().connections_opened, 3);
}

BOOST_FIXTURE_TEST_CASE(dispatch_prefers_an_idle_connection, fixture) {
  make(limits(2, 2, 4));
  start_up(2);
  pool->on_request(t0, {1}, far, false);
  pool->on_request(t0, {2}, far, false);
  BOOST_REQUIRE_EQUAL(shell.sent.size(), 2u);
  BOOST_CHECK_EQUAL(shell.sent[0].first, 1u);
  BOOST_CHECK_EQUAL(shell.sent[1].first, 2u); // the idle one, not pipelined on 1
  shell.answer(1);
  pool->on_request(t0, {3}, far, false);
  BOOST_CHECK_EQUAL(shell.sent[2].first, 1u); // idle again
}

BOOST_FIXTURE_TEST_CASE(grows_up_to_max_queueing_then_pipelines_least_loaded, fixture) {
  make(limits(1, 3, 2, 10));
  start_up(1);
  pool->on_request(t0, {1}, far, false); // idle worker 1
  BOOST_CHECK_EQUAL(shell.spawned.size(), 1u);
  // All busy while the pool may grow: open one more and queue, never pipeline.
  pool->on_request(t0, {2}, far, false);
  BOOST_CHECK_EQUAL(shell.spawned.size(), 2u);
  BOOST_CHECK_EQUAL(shell.sent.size(), 1u);
  BOOST_CHECK_EQUAL(pool->waiting(), 1u);
  BOOST_CHECK_EQUAL(pool->refreshed_stats().waiting_requests, 1);
  // Waiting: workers are asked to report every answer.
  for (auto& [id, c] : shell.spawned)
    BOOST_CHECK(c->report_answers.load());
  pool->on_ready(t0, 2); // the queued request goes to the connection that opened
  BOOST_CHECK(shell.sent.back() == (std::pair<std::uint32_t, int>{2u, 2}));
  BOOST_CHECK_EQUAL(pool->waiting(), 0u);
  pool->on_request(t0, {3}, far, false); // both busy: grow to 3, queue
  BOOST_CHECK_EQUAL(shell.spawned.size(), 3u);
  BOOST_CHECK_EQUAL(pool->waiting(), 1u);
  // The first connection that frees up takes it (before the new one opens).
  shell.answer(1);
  pool->on_answers(t0, 1);
  BOOST_CHECK(shell.sent.back() == (std::pair<std::uint32_t, int>{1u, 3}));
  BOOST_CHECK_EQUAL(pool->waiting(), 0u);
  for (auto& [id, c] : shell.spawned)
    BOOST_CHECK(!c->report_answers.load());
  pool->on_ready(t0, 3);
  pool->on_request(t0, {4}, far, false); // idle worker 3
  BOOST_CHECK_EQUAL(shell.sent.back().first, 3u);
  // At max, every connection busy with a statement that started just now:
  // pipeline on the least loaded.
  auto t1 = t0 + 1 * ms;
  pool->on_request(t1, {5}, far, false);
  BOOST_CHECK_EQUAL(shell.sent.back().first, 1u);
  pool->on_request(t1, {6}, far, false);
  BOOST_CHECK_EQUAL(shell.sent.back().first, 2u);
  pool->on_request(t1, {7}, far, false);
  BOOST_CHECK_EQUAL(shell.sent.back().first, 3u);
  BOOST_CHECK_EQUAL(shell.spawned.size(), 3u);
  BOOST_CHECK_EQUAL(pool->refreshed_stats().in_flight_requests, 6);
  // Pipelined requests are waiting too (not executing yet).
  BOOST_CHECK_EQUAL(pool->refreshed_stats().waiting_requests, 3);
  // Every worker at depth 2: the next one is queued.
  pool->on_request(t1, {8}, far, false);
  BOOST_CHECK_EQUAL(shell.sent.size(), 7u);
  BOOST_CHECK_EQUAL(pool->waiting(), 1u);
  BOOST_CHECK_EQUAL(pool->refreshed_stats().waiting_requests, 4);
  // An answer frees capacity: the queued request goes out on the report,
  // pipelined behind the statement that just started there.
  shell.answer(2);
  shell.spawned.at(2)->head_since_ns = t1 + 1 * ms;
  pool->on_answers(t1 + 1 * ms, 2);
  BOOST_CHECK_EQUAL(pool->waiting(), 0u);
  BOOST_CHECK(shell.sent.back() == (std::pair<std::uint32_t, int>{2u, 8}));
  BOOST_CHECK_EQUAL(pool->refreshed_stats().waiting_requests, 3);
}

BOOST_FIXTURE_TEST_CASE(no_pipelining_behind_a_long_statement, fixture) {
  make(limits(1, 2, 8, 10));
  start_up(1);
  pool->on_request(t0, {1}, far, false); // a long statement on worker 1
  // 300 ms later: not behind it; a second connection opens and takes it.
  pool->on_request(t0 + 300 * ms, {2}, far, false);
  BOOST_CHECK_EQUAL(shell.sent.size(), 1u);
  BOOST_CHECK_EQUAL(pool->waiting(), 1u);
  BOOST_CHECK_EQUAL(pool->refreshed_stats().waiting_requests, 1);
  pool->on_ready(t0 + 310 * ms, 2);
  BOOST_CHECK(shell.sent.back() == (std::pair<std::uint32_t, int>{2u, 2}));
  // At max: behind worker 2's statement, which started 2 ms ago.
  pool->on_request(t0 + 312 * ms, {3}, far, false);
  BOOST_CHECK(shell.sent.back() == (std::pair<std::uint32_t, int>{2u, 3}));
  // Both heads have run past the bound: queued, not pipelined.
  pool->on_request(t0 + 400 * ms, {4}, far, false);
  BOOST_CHECK_EQUAL(shell.sent.size(), 3u);
  BOOST_CHECK_EQUAL(pool->waiting(), 1u);
  BOOST_CHECK_EQUAL(pool->refreshed_stats().waiting_requests, 2); // 1 queued, 1 pipelined
  // Worker 2 answers request 2; request 3 starts there now (the worker says).
  shell.answer(2);
  shell.spawned.at(2)->head_since_ns = t0 + 500 * ms;
  pool->on_answers(t0 + 501 * ms, 2);
  BOOST_CHECK(shell.sent.back() == (std::pair<std::uint32_t, int>{2u, 4}));
  BOOST_CHECK_EQUAL(pool->waiting(), 0u);
}

BOOST_FIXTURE_TEST_CASE(pipelining_bound_is_respected, fixture) {
  make(limits(1, 1, 3, 10));
  start_up(1);
  for (int i = 1; i <= 5; ++i)
    pool->on_request(t0, {i}, far, false);
  BOOST_CHECK_EQUAL(shell.sent.size(), 3u);
  BOOST_CHECK_EQUAL(pool->waiting(), 2u);
}

BOOST_FIXTURE_TEST_CASE(exclusive_statement_takes_an_idle_connection_alone, fixture) {
  make(limits(1, 1, 4, 10));
  start_up(1);
  pool->on_request(t0, {1}, far, true); // BEGIN ...
  pool->on_request(t0, {2}, far, false);
  BOOST_CHECK_EQUAL(shell.sent.size(), 1u); // nothing pipelined behind it
  BOOST_CHECK_EQUAL(pool->waiting(), 1u);
  shell.answer(1);
  pool->on_answers(t0, 1);
  BOOST_CHECK_EQUAL(shell.sent.size(), 2u);
}

BOOST_FIXTURE_TEST_CASE(pinned_connection_gets_nothing_else_and_is_not_idle, fixture) {
  make(limits(1, 1, 4, 10));
  start_up(1);
  BOOST_CHECK_EQUAL(pool->refreshed_stats().idle_connections, 1);
  pool->on_request(t0, {1}, far, true, true); // a transaction session's pin
  BOOST_REQUIRE_EQUAL(shell.sent.size(), 1u);
  BOOST_CHECK_EQUAL(pool->refreshed_stats().idle_connections, 0);
  // Nothing else goes to it, however idle it looks (the session's statements
  // bypass the policy).
  pool->on_request(t0, {2}, far, false);
  pool->on_request(t0, {3}, far, true, true); // a second pin waits too
  BOOST_CHECK_EQUAL(shell.sent.size(), 1u);
  BOOST_CHECK_EQUAL(pool->waiting(), 2u);
  pool->on_answers(t0, 1);
  BOOST_CHECK_EQUAL(shell.sent.size(), 1u);
  // Given back: the waiting requests get it, in order (the second pin after
  // the query is answered: it needs the connection idle).
  pool->on_unpin(t0, 1);
  BOOST_CHECK_EQUAL(shell.sent.size(), 2u);
  BOOST_CHECK(shell.sent.back() == (std::pair<std::uint32_t, int>{1u, 2}));
  shell.answer(1);
  pool->on_answers(t0, 1);
  BOOST_CHECK_EQUAL(shell.sent.size(), 3u);
  BOOST_CHECK(shell.sent.back() == (std::pair<std::uint32_t, int>{1u, 3}));
  BOOST_CHECK_EQUAL(pool->refreshed_stats().idle_connections, 0);
  BOOST_CHECK_EQUAL(pool->refreshed_stats().in_flight_requests, 0);
}

BOOST_FIXTURE_TEST_CASE(queue_bound_gives_pool_exhausted, fixture) {
  make(limits(1, 1, 1, 2));
  start_up(1);
  pool->on_request(t0, {1}, far, false);
  pool->on_request(t0, {2}, far, false);
  pool->on_request(t0, {3}, far, false);
  BOOST_CHECK_EQUAL(pool->waiting(), 2u);
  pool->on_request(t0, {4}, far, false);
  BOOST_REQUIRE_EQUAL(shell.rejected.size(), 1u);
  BOOST_CHECK_EQUAL(shell.rejected[0].first, 4);
  BOOST_CHECK_EQUAL(shell.rejected[0].second, pool_reject::exhausted);
  BOOST_CHECK_EQUAL(pool->stats().requests_rejected, 1);
}

BOOST_FIXTURE_TEST_CASE(waiting_request_times_out_on_tick, fixture) {
  make(limits(1, 1));
  start_up(1);
  pool->on_request(t0, {1}, far, false);
  pool->on_request(t0, {2}, t0 + 50 * ms, false);
  pool->on_request(t0, {3}, t0 + 80 * ms, false);
  BOOST_CHECK(std::find(shell.armed.begin(), shell.armed.end(), t0 + 50 * ms) != shell.armed.end());
  BOOST_CHECK_EQUAL(pool->on_tick(t0 + 60 * ms), t0 + 80 * ms);
  BOOST_REQUIRE_EQUAL(shell.rejected.size(), 1u);
  BOOST_CHECK_EQUAL(shell.rejected[0].first, 2);
  BOOST_CHECK_EQUAL(shell.rejected[0].second, pool_reject::waited_too_long);
  BOOST_CHECK_EQUAL(pool->stats().queries_timed_out, 1);
  // Past its deadline on arrival: answered at once.
  pool->on_request(t0 + 60 * ms, {4}, t0 + 60 * ms, false);
  BOOST_CHECK_EQUAL(shell.rejected.back().second, pool_reject::deadline_passed);
}

BOOST_FIXTURE_TEST_CASE(backoff_doubles_with_jitter_up_to_the_cap, fixture) {
  for (std::uint32_t seed : {1u, 7u, 12345u}) {
    fake_shell sh;
    policy p{sh, limits(1, 1), false, seed};
    std::int64_t now = t0;
    p.on_start(now, true);
    std::int64_t expected = 100 * ms;
    for (std::uint32_t id = 1; id <= 8; ++id) {
      BOOST_REQUIRE_EQUAL(sh.spawned.size(), id);
      p.on_gone(now, id, true, "connection failed: refused");
      BOOST_CHECK_EQUAL(p.state(), node_state::backoff);
      BOOST_CHECK_EQUAL(p.failures_in_row(), static_cast<int>(id));
      auto wait = p.next_attempt_ns() - now;
      BOOST_CHECK_GE(wait, expected / 2);
      BOOST_CHECK_LE(wait, expected);
      expected = std::min<std::int64_t>(expected * 2, 1000 * ms); // cap
      // No attempt before the step has passed...
      p.on_tick(now + wait - 1);
      BOOST_CHECK_EQUAL(sh.spawned.size(), id);
      // ...one (only one) once it has.
      now += wait;
      p.on_tick(now);
      BOOST_CHECK_EQUAL(p.state(), node_state::reconnecting);
    }
    BOOST_CHECK_EQUAL(sh.first_done, 1);
    BOOST_CHECK_EQUAL(p.stats().connect_failures, 8);
  }
}

BOOST_FIXTURE_TEST_CASE(a_successful_probe_ends_the_backoff, fixture) {
  fake_shell sh;
  policy p{sh, limits(1, 2), false, 3};
  std::int64_t now = t0;
  p.on_start(now, true);
  for (std::uint32_t id = 1; id <= 4; ++id) { // backoff grows to 800 ms
    p.on_gone(now, id, true, "connection failed: refused");
    now = p.next_attempt_ns();
    p.on_tick(now);
  }
  p.on_gone(now, 5, true, "connection failed: refused");
  BOOST_REQUIRE_EQUAL(p.state(), node_state::backoff);
  BOOST_REQUIRE_GT(p.next_attempt_ns() - now, 100 * ms);
  // While down, a request fails fast...
  p.on_request(now, {1}, far, false);
  BOOST_CHECK_EQUAL(sh.rejected.size(), 1u);
  // ...until the probe answers: a connection opens at once, requests wait for it.
  p.on_probe_ok(now + 1);
  BOOST_CHECK_EQUAL(sh.spawned.size(), 6u);
  BOOST_CHECK_EQUAL(p.state(), node_state::reconnecting);
  p.on_request(now + 2, {2}, far, false);
  BOOST_CHECK_EQUAL(sh.rejected.size(), 1u);
  p.on_ready(now + 3, 6);
  BOOST_CHECK_EQUAL(p.state(), node_state::up);
  BOOST_REQUIRE(!sh.sent.empty());
  BOOST_CHECK_EQUAL(sh.sent.back().second, 2);
  // Up already: a probe changes nothing.
  p.on_probe_ok(now + 4);
  BOOST_CHECK_EQUAL(sh.spawned.size(), 6u);
}

BOOST_FIXTURE_TEST_CASE(jitter_spreads_retries, fixture) {
  // Two pools failing together do not retry in lock step (most seeds).
  int differ = 0;
  for (std::uint32_t seed = 1; seed <= 10; ++seed) {
    fake_shell a, b;
    policy pa{a, limits(1, 1), false, seed}, pb{b, limits(1, 1), false, seed + 100};
    pa.on_start(t0, true);
    pb.on_start(t0, true);
    pa.on_gone(t0, 1, true, "x");
    pb.on_gone(t0, 1, true, "x");
    differ += pa.next_attempt_ns() != pb.next_attempt_ns();
  }
  BOOST_CHECK_GE(differ, 8);
}

BOOST_FIXTURE_TEST_CASE(down_node_fails_fast_and_recovers, fixture) {
  make(limits(2, 4));
  pool->on_start(t0, true);
  pool->on_request(t0, {1}, far, false); // waits for the first connections
  BOOST_CHECK_EQUAL(pool->waiting(), 1u);
  pool->on_gone(t0, 1, true, "connection failed: refused");
  BOOST_CHECK_EQUAL(pool->state(), node_state::reconnecting); // 2 still connecting
  pool->on_gone(t0, 2, true, "connection failed: refused");
  BOOST_CHECK_EQUAL(pool->state(), node_state::backoff);
  BOOST_CHECK(pool->down());
  // The waiting request is answered with the node's error; new ones fail fast.
  BOOST_REQUIRE_EQUAL(shell.rejected.size(), 1u);
  BOOST_CHECK_EQUAL(shell.rejected[0].second, pool_reject::node_down);
  pool->on_request(t0, {2}, far, false);
  BOOST_CHECK(shell.rejected.back() == (std::pair<int, pool_reject>{2, pool_reject::node_down}));
  BOOST_CHECK_EQUAL(pool->last_error(), "connection failed: refused");
  // One attempt at the next step, not pool.min.
  pool->on_tick(pool->next_attempt_ns());
  BOOST_CHECK_EQUAL(shell.spawned.size(), 3u);
  BOOST_CHECK_EQUAL(pool->state(), node_state::reconnecting);
  pool->on_ready(t0, 3);
  BOOST_CHECK_EQUAL(pool->state(), node_state::up);
  BOOST_CHECK_EQUAL(pool->failures_in_row(), 0);
  // Back up: replenish to min.
  BOOST_CHECK_EQUAL(shell.spawned.size(), 4u);
}

BOOST_FIXTURE_TEST_CASE(replenishes_to_min_after_a_loss, fixture) {
  make(limits(2, 4));
  start_up(2);
  pool->on_gone(t0, 1, false, ""); // closed (e.g. left in a transaction)
  BOOST_CHECK_EQUAL(pool->stats().connections_discarded, 1);
  BOOST_CHECK_EQUAL(shell.spawned.size(), 3u);
  BOOST_CHECK_EQUAL(pool->state(), node_state::up);
  pool->on_retiring(t0, 2);
  pool->on_gone(t0, 2, false, "");
  BOOST_CHECK_EQUAL(pool->state(), node_state::reconnecting);
  BOOST_CHECK_EQUAL(shell.connected_events.back(), false);
  // No ready connection left: one attempt at a time (3 still connects).
  BOOST_CHECK_EQUAL(shell.spawned.size(), 3u);
}

BOOST_FIXTURE_TEST_CASE(dns_name_resolved_before_connecting, fixture) {
  make(limits(1, 2), true);
  pool->on_start(t0, false);
  BOOST_CHECK_EQUAL(shell.resolves, 1);
  BOOST_CHECK(shell.spawned.empty());
  pool->on_request(t0, {1}, far, false);
  BOOST_CHECK_EQUAL(pool->waiting(), 1u); // no growth without an address
  BOOST_CHECK(shell.spawned.empty());
  pool->on_resolved(t0, "connection failed: could not resolve host");
  BOOST_CHECK_EQUAL(pool->state(), node_state::backoff);
  BOOST_CHECK_EQUAL(shell.rejected.size(), 1u);
  pool->on_tick(pool->next_attempt_ns());
  BOOST_CHECK_EQUAL(shell.resolves, 2);
  BOOST_CHECK_EQUAL(pool->state(), node_state::reconnecting);
  pool->on_resolved(pool->next_attempt_ns(), "");
  BOOST_CHECK_EQUAL(shell.spawned.size(), 1u);
}

BOOST_FIXTURE_TEST_CASE(drain_answers_queue_then_stops, fixture) {
  make(limits(1, 1));
  start_up(1);
  pool->on_request(t0, {1}, far, false);
  pool->on_request(t0, {2}, far, false); // waits
  pool->on_stop(t0 + 100 * ms);
  BOOST_CHECK_EQUAL(pool->state(), node_state::draining);
  BOOST_REQUIRE_EQUAL(shell.rejected.size(), 1u);
  BOOST_CHECK(shell.rejected[0] == (std::pair<int, pool_reject>{2, pool_reject::stop_not_started}));
  pool->on_request(t0, {3}, far, false);
  BOOST_CHECK(shell.rejected.back() == (std::pair<int, pool_reject>{3, pool_reject::stopping}));
  pool->maybe_finish_stop();
  BOOST_CHECK_EQUAL(shell.stopped_calls, 0); // worker 1 still answers
  pool->on_gone(t0 + 10 * ms, 1, false, "");
  BOOST_CHECK_EQUAL(pool->state(), node_state::stopped);
  BOOST_CHECK_EQUAL(shell.stopped_calls, 1);
  BOOST_CHECK_EQUAL(shell.connected_events.back(), false);
}

BOOST_FIXTURE_TEST_CASE(drain_deadline_kills_what_is_left, fixture) {
  make(limits(2, 2));
  start_up(2);
  pool->on_request(t0, {1}, far, false);
  pool->on_stop(t0 + 100 * ms);
  pool->on_tick(t0 + 50 * ms);
  BOOST_CHECK(shell.killed.empty());
  BOOST_CHECK_EQUAL(shell.armed.back(), t0 + 100 * ms);
  pool->on_tick(t0 + 100 * ms);
  BOOST_CHECK_EQUAL(shell.killed.size(), 2u);
  BOOST_CHECK_EQUAL(pool->state(), node_state::stopped);
  BOOST_CHECK_EQUAL(shell.stopped_calls, 1);
}

// -- the connection worker's states (worker_phase.hpp) ---------------------------

BOOST_AUTO_TEST_CASE(worker_phase_legal_moves) {
  using p = worker_phase;
  // The life of a pool connection.
  BOOST_CHECK(legal_transition(p::connecting, p::ready));
  BOOST_CHECK(legal_transition(p::ready, p::retiring));
  BOOST_CHECK(legal_transition(p::retiring, p::closed));
  BOOST_CHECK(legal_transition(p::ready, p::draining));
  BOOST_CHECK(legal_transition(p::retiring, p::draining));
  BOOST_CHECK(legal_transition(p::draining, p::closed));
  // Failing is possible from every open state, and while connecting.
  for (auto from : {p::connecting, p::ready, p::retiring, p::draining})
    BOOST_CHECK(legal_transition(from, p::failed));
  // Drained before it was ready: closed at once.
  BOOST_CHECK(legal_transition(p::connecting, p::closed));
  // Staying is always legal.
  for (auto s : {p::connecting, p::ready, p::retiring, p::draining, p::closed, p::failed})
    BOOST_CHECK(legal_transition(s, s));
}

BOOST_AUTO_TEST_CASE(worker_phase_illegal_moves) {
  using p = worker_phase;
  // Nothing goes back to connecting or to ready once it wound down.
  for (auto from : {p::ready, p::retiring, p::draining, p::closed, p::failed})
    BOOST_CHECK(!legal_transition(from, p::connecting));
  for (auto from : {p::retiring, p::draining, p::closed, p::failed})
    BOOST_CHECK(!legal_transition(from, p::ready));
  BOOST_CHECK(!legal_transition(p::draining, p::retiring));
  BOOST_CHECK(!legal_transition(p::connecting, p::retiring));
  BOOST_CHECK(!legal_transition(p::connecting, p::draining)); // drained while connecting: closed
  // A ready connection closes only by retiring or draining (it answers what it holds).
  BOOST_CHECK(!legal_transition(p::ready, p::closed));
  // Closed and failed are final.
  BOOST_CHECK(!legal_transition(p::closed, p::failed));
  BOOST_CHECK(!legal_transition(p::failed, p::closed));
  BOOST_CHECK(!legal_transition(p::closed, p::draining));
}
