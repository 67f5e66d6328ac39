#pragma once

// The pool policy of one node, as a plain class (unit-tested without actors
// or a server, like health_tracker.hpp). The node supervisor is its shell: it
// feeds the policy events (request arrived, connection ready / retiring /
// gone, host resolved, timer fired, stop requested) and carries out what the
// policy asks of it through `Shell` (spawn a connection, send a request to
// one, answer a request with an error, arm the timer, resolve the host).
//
// Rules:
// - Dispatch: an idle ready connection first. Else, while the pool may still
//   grow (fewer than `max` connections, or one is opening), open one more and
//   queue the request: it goes to the first connection that frees up or opens.
//   Only at `max` is a request pipelined, on the least-loaded connection (up to
//   `pipeline_depth` in flight) whose head statement has run for less than
//   `pipeline_bound` (no head-of-line blocking behind a long statement: such a
//   request is queued instead). Else queue (at most `max_waiting`, then
//   pool_exhausted) until a connection frees up or the request's deadline
//   passes. A statement that may open a transaction (exclusive) only goes to a
//   connection with nothing in flight, and nothing is pipelined behind it.
// - Waiting: `waiting_requests` counts every request not yet executing on
//   the server: queued here, and pipelined behind another statement.
// - Pinning (transactions): a pin request waits like an exclusive request;
//   it takes an idle ready connection, which then gets nothing else until
//   on_unpin, and counts as in use (not idle) in the stats.
// - Growth: never more connections opening than requests waiting for them.
// - Replenish: keep `min` connections. At the first start, before any attempt
//   failed, all of `min` are opened at once; from the first failure on, a
//   node without an open connection gets one attempt at a time.
// - Backoff: after a failed attempt the next one waits initial * 2^(n-1)
//   (capped at `backoff_max`), with jitter in [backoff/2, backoff] so that
//   pools that failed together do not retry in lock step. While the node is
//   down (state backoff), requests fail fast with connection_failed.
// - Drain: on stop, queued requests are answered shutting_down; in-flight ones
//   get until the stop deadline, then the connections are killed.
//
// Times are steady-clock nanoseconds passed in by the caller (`now`), so that
// tests drive the policy with a fake clock.
//
// Shell requirements (see node_supervisor.cpp and tests/unit/test_pool_policy.cpp):
//   using request = ...;   // what a caller waits on (moved around, never copied)
//   using handle = ...;    // a connection (worker) handle
//   using counters = ...;  // shared with the worker: atomic `answered`, atomic `report_answers`,
//                          // atomic `head_since_ns` (when its current head statement started)
//   handle spawn(std::uint32_t id, std::shared_ptr<counters>);
//   void send(const handle&, request&&);
//   void reject(request&&, pool_reject why);
//   void arm(std::int64_t at_ns);          // wake me (on_tick) at `at_ns` or earlier
//   void resolve();                        // resolve the host, answer with on_resolved
//   void connected(bool);                  // the node got its first / lost its last connection
//   void first_attempt_done();             // the first connection attempt finished
//   void stopped();                        // drained: every connection is gone
//   void kill(const handle&);              // stop deadline passed: end it now
//   void connect_failed(const std::string& error, int attempt, std::int64_t next_in_ns);

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "assert.hpp"
#include "log.hpp"
#include "pgcm/types.hpp"

namespace pgcm::detail {

/// Lifecycle of a node's pool.
enum class node_state : std::uint8_t {
  starting,     ///< first connection attempts running; none has finished yet
  up,           ///< at least one connection is ready
  reconnecting, ///< no ready connection, but an attempt is running or due; requests wait
  backoff,      ///< down: no connection, none opening; waiting for the next backoff step
  draining,     ///< stop requested: no new requests, in-flight ones finish
  stopped,      ///< every connection closed; terminal
};

const char* to_string(node_state s);

/// Whether the pool may move from `from` to `to` (staying is always legal).
constexpr bool legal_transition(node_state from, node_state to) {
  using s = node_state;
  if (from == to) return true;
  switch (from) {
  case s::starting:
    return to == s::up || to == s::reconnecting || to == s::backoff || to == s::draining;
  case s::up:
  case s::reconnecting:
  case s::backoff:
    return to == s::up || to == s::reconnecting || to == s::backoff || to == s::draining;
  case s::draining:
    return to == s::stopped;
  case s::stopped:
    return false;
  }
  return false;
}

/// A pool connection's lifecycle as the policy sees it.
enum class conn_state : std::uint8_t {
  connecting, ///< opening
  ready,      ///< takes requests
  retiring,   ///< takes no new requests; closes when idle
};

/// Why a request is answered with an error instead of a result.
enum class pool_reject : std::uint8_t {
  stopping,         ///< arrived after stop (shutting_down)
  stop_not_started, ///< was waiting when stop came (shutting_down)
  deadline_passed,  ///< arrived past its deadline (query_timeout)
  waited_too_long,  ///< its deadline passed in the wait queue (query_timeout)
  node_down,        ///< the node is down (connection_failed, last_error())
  exhausted,        ///< the wait queue is full (pool_exhausted, waiting())
};

struct pool_limits {
  int min = 1;
  int max = 10;
  int pipeline_depth = 1;
  int max_waiting = 1000;
  /// Never pipeline behind a statement that has run this long: pipelining
  /// saves one round trip and wake-up (tens of microseconds locally, about a
  /// millisecond across a network); a head statement that has run for longer
  /// than a few of those has shown it is not a short one, and the expected
  /// wait behind it exceeds anything pipelining saves (docs/design.md).
  std::chrono::nanoseconds pipeline_bound{std::chrono::milliseconds{5}};
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{30000};
  /// Re-resolve a host name after a failure once its address is this old.
  std::chrono::nanoseconds dns_ttl{std::chrono::seconds{30}};
};

template <class Shell> class pool_policy {
public:
  using request = typename Shell::request;
  using handle = typename Shell::handle;
  using counters = typename Shell::counters;

  struct slot {
    handle worker;
    std::uint32_t id = 0;
    conn_state state = conn_state::connecting;
    // requests routed to it; minus counters->answered, plus counters->leased
    // (a facade caller runs a query on it, src/lease.hpp) = in flight
    std::int64_t sent = 0;
    std::shared_ptr<counters> shared;
    bool exclusive = false;        // runs a statement that may open a transaction
    bool pinned = false;           // held by a transaction session: gets nothing else
    std::int64_t sent_idle_ns = 0; // when the last request sent to it found it idle

    int in_flight() const {
      return static_cast<int>(
          std::max<std::int64_t>(0, sent - shared->answered.load() + shared->leased.load()));
    }
    /// When its head statement started: sent to an idle connection (we
    /// know), or the one before it answered (the worker knows).
    std::int64_t head_since_ns() const {
      return std::max(sent_idle_ns, static_cast<std::int64_t>(shared->head_since_ns.load()));
    }
  };

  struct waiting_request {
    request req;
    std::int64_t deadline_ns = 0;
    bool exclusive = false;
    bool pin = false;
  };

  /// `needs_dns`: the host is a name, resolved by the shell (`resolve()`),
  /// not an address; until `on_resolved` nothing connects.
  pool_policy(Shell& shell, pool_limits limits, bool needs_dns, std::uint32_t seed)
      : shell_(shell), limits_(limits), needs_dns_(needs_dns), rng_(seed) {}

  pool_policy(const pool_policy&) = delete;
  pool_policy& operator=(const pool_policy&) = delete;

  // -- state -----------------------------------------------------------------

  node_state state() const { return state_; }
  bool stopping() const { return state_ == node_state::draining || state_ == node_state::stopped; }
  /// Down: nothing open, nothing opening, waiting for the next backoff step.
  bool down() const { return state_ == node_state::backoff; }
  const std::vector<slot>& workers() const { return workers_; }
  std::size_t waiting() const { return waiting_.size(); }
  int failures_in_row() const { return failures_in_row_; }
  std::int64_t next_attempt_ns() const { return next_attempt_ns_; }
  /// The last connection error, as the shell reported it.
  const std::string& last_error() const { return last_error_; }
  std::int64_t stop_deadline_ns() const { return stop_deadline_ns_; }
  int illegal_transitions() const { return illegal_transitions_; }
  pool_stats& stats() { return stats_; }

  /// The stats with their gauges brought up to date.
  const pool_stats& refreshed_stats() {
    stats_.total_connections = static_cast<std::int64_t>(workers_.size());
    stats_.idle_connections = 0;
    stats_.in_flight_requests = 0;
    for (auto& w : workers_) {
      auto n = w.in_flight();
      if (w.state == conn_state::ready && n == 0 && !w.pinned) ++stats_.idle_connections;
      stats_.in_flight_requests += n;
    }
    // Queued here, and pipelined behind another statement on a connection.
    stats_.waiting_requests = static_cast<std::int64_t>(waiting_.size());
    for (auto& w : workers_)
      stats_.waiting_requests += std::max(0, w.in_flight() - 1);
    return stats_;
  }

  /// Moves to `to`. An illegal move is a bug: it aborts debug builds and is
  /// logged (and counted) in release builds, where the move still happens
  /// (the state is derived from the pool's facts, which stay true).
  bool transition(node_state to) {
    if (!legal_transition(state_, to)) {
      ++illegal_transitions_;
      log::error("pool policy: illegal node state transition {} -> {}", to_string(state_),
                 to_string(to));
      PGCM_ASSERT(false, "pool policy: only legal node state transitions (pool_policy.hpp)");
      state_ = to;
      return false;
    }
    state_ = to;
    return true;
  }

  // -- events ----------------------------------------------------------------

  /// Start: open the first connections (or resolve the host first).
  void on_start(std::int64_t now, bool have_params) {
    have_params_ = have_params;
    replenish(now);
    update_state();
  }

  /// A request arrived. `pin`: the request asks for a connection of its own
  /// (shell.send gets the connection it is pinned to).
  void on_request(std::int64_t now, request&& req, std::int64_t deadline_ns, bool exclusive,
                  bool pin = false) {
    if (stopping()) {
      shell_.reject(std::move(req), pool_reject::stopping);
      return;
    }
    if (deadline_ns <= now) {
      ++stats_.queries_timed_out;
      shell_.reject(std::move(req), pool_reject::deadline_passed);
      return;
    }
    dispatch(now, std::move(req), deadline_ns, exclusive || pin, false, pin);
  }

  /// The session that pinned connection `id` is done with it.
  void on_unpin(std::int64_t now, std::uint32_t id) {
    slot* w = find(id);
    if (w == nullptr || !w->pinned) return;
    w->pinned = false;
    drain_queue(now);
  }

  /// The connection slot of `worker`, or null.
  const slot* find_worker(const handle& worker) const {
    for (auto& w : workers_)
      if (w.worker == worker) return &w;
    return nullptr;
  }

  /// Connection `id` opened.
  void on_ready(std::int64_t now, std::uint32_t id) {
    slot* w = find(id);
    if (w == nullptr) return;
    if (w->state == conn_state::connecting) {
      w->state = conn_state::ready;
      ++stats_.connections_opened;
      failures_in_row_ = 0;
      next_attempt_ns_ = 0;
      update_state();
      set_connected(true);
      if (!first_connect_done_) {
        first_connect_done_ = true;
        shell_.first_attempt_done();
      }
      replenish(now);
    }
    drain_queue(now);
  }

  /// Connection `id` takes no new requests any more.
  void on_retiring(std::int64_t now, std::uint32_t id) {
    slot* w = find(id);
    if (w == nullptr) return;
    w->state = conn_state::retiring;
    update_state();
    drain_queue(now);
  }

  /// Capacity may have freed without a report (a leased connection came back,
  /// src/lease.hpp): hand queued requests out.
  void on_capacity(std::int64_t now) { drain_queue(now); }

  /// A report of connection `id` that changes no state (answers were counted).
  void on_answers(std::int64_t now, std::uint32_t id) {
    if (find(id) != nullptr) drain_queue(now);
  }

  /// Whether connection `id` belongs to the pool.
  bool knows(std::uint32_t id) const {
    return std::any_of(workers_.begin(), workers_.end(),
                       [id](const slot& w) { return w.id == id; });
  }

  /// Connection `id` is gone: closed, or `failed` with `error`.
  void on_gone(std::int64_t now, std::uint32_t id, bool failed, const std::string& error) {
    auto it =
        std::find_if(workers_.begin(), workers_.end(), [id](const slot& w) { return w.id == id; });
    if (it == workers_.end()) return;
    bool was_connecting = it->state == conn_state::connecting;
    workers_.erase(it);
    if (stopping()) {
      maybe_finish_stop();
      return;
    }
    if (was_connecting && failed) {
      note_connect_failure(now, error);
    } else {
      ++stats_.connections_discarded;
      if (failed) last_error_ = error;
    }
    update_state();
    if (count(conn_state::ready) == 0) {
      set_connected(false);
      if (down()) fail_waiting(pool_reject::node_down);
    }
    replenish(now);
    drain_queue(now);
  }

  /// The node's health probe just succeeded. A node waiting out its reconnect
  /// backoff answers again: end the backoff and open a connection now, so that
  /// a node reported healthy serves the next request (it waits for that
  /// connection instead of failing fast with the last connect error).
  void on_probe_ok(std::int64_t now) {
    if (stopping() || failures_in_row_ == 0 || count(conn_state::ready) > 0) return;
    failures_in_row_ = 0;
    next_attempt_ns_ = now;
    update_state();
    replenish(now);
  }

  /// The host name resolved to an address (`error` empty; the shell built
  /// its connection parameters), or could not be resolved.
  void on_resolved(std::int64_t now, const std::string& error) {
    resolving_ = false;
    if (!error.empty()) {
      resolved_at_ns_ = 0; // resolve again at the next attempt
      note_connect_failure(now, error);
      update_state();
      if (down()) fail_waiting(pool_reject::node_down);
      replenish(now);
      return;
    }
    resolved_at_ns_ = now;
    have_params_ = true;
    replenish(now);
    update_state();
  }

  /// The timer fired. Returns the next time the policy wants to be woken
  /// (0: none); while stopping it arms the timer itself.
  std::int64_t on_tick(std::int64_t now) {
    if (stopping()) {
      if (now >= stop_deadline_ns_) {
        // Grace period over and connections still there: kill them; they
        // answer what they hold.
        for (auto& w : workers_)
          shell_.kill(w.worker);
        workers_.clear();
        maybe_finish_stop();
        return 0;
      }
      shell_.arm(stop_deadline_ns_);
      return 0;
    }
    std::int64_t next = 0;
    auto earliest = [&](std::int64_t t) {
      if (t > 0 && (next == 0 || t < next)) next = t;
    };
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if (it->deadline_ns <= now) {
        ++stats_.queries_timed_out;
        auto req = std::move(it->req);
        it = waiting_.erase(it);
        shell_.reject(std::move(req), pool_reject::waited_too_long);
      } else {
        earliest(it->deadline_ns);
        ++it;
      }
    }
    if (next_attempt_ns_ != 0 && now >= next_attempt_ns_) {
      replenish(now);
      update_state();
    } else {
      earliest(next_attempt_ns_);
    }
    return next;
  }

  /// Stop: answer the queued requests, let in-flight ones finish until
  /// `deadline_ns`. The shell tells the workers to drain.
  void on_stop(std::int64_t deadline_ns) {
    stop_deadline_ns_ = deadline_ns;
    transition(node_state::draining);
    fail_waiting(pool_reject::stop_not_started);
  }

  /// Finishes the stop once every connection is gone.
  void maybe_finish_stop() {
    if (state_ != node_state::draining || !workers_.empty()) return;
    transition(node_state::stopped);
    set_connected(false);
    shell_.stopped();
  }

  /// Answers every queued request with `why`.
  void fail_waiting(pool_reject why) {
    auto queue = std::move(waiting_);
    waiting_.clear();
    for (auto& w : queue) {
      ++stats_.queries_failed;
      shell_.reject(std::move(w.req), why);
    }
  }

  /// Answers what is left in the queue (the shell is going away).
  template <class F> void for_each_waiting(F&& f) {
    for (auto& w : waiting_)
      f(w.req);
  }

private:
  int count(conn_state s) const {
    return static_cast<int>(std::count_if(workers_.begin(), workers_.end(),
                                          [s](const slot& w) { return w.state == s; }));
  }

  slot* find(std::uint32_t id) {
    for (auto& w : workers_)
      if (w.id == id) return &w;
    return nullptr;
  }

  /// The state the facts say the pool is in.
  node_state derived_state() const {
    if (stopping()) return workers_.empty() ? node_state::stopped : node_state::draining;
    if (count(conn_state::ready) > 0) return node_state::up;
    if (failures_in_row_ > 0 && count(conn_state::connecting) == 0 && !resolving_)
      return node_state::backoff;
    if (!first_connect_done_) return node_state::starting;
    return node_state::reconnecting;
  }

  void update_state() {
    auto s = derived_state();
    if (s != state_) transition(s);
  }

  void set_connected(bool connected) {
    if (connected_ == connected) return;
    connected_ = connected;
    shell_.connected(connected);
  }

  void spawn() {
    auto id = next_worker_id_++;
    auto shared = std::make_shared<counters>();
    shared->report_answers = !waiting_.empty();
    auto h = shell_.spawn(id, shared);
    workers_.push_back(slot{std::move(h), id, conn_state::connecting, 0, std::move(shared), false});
    update_state();
  }

  /// Whether a new connection may be opened now. After a failed attempt, only
  /// one attempt at a time and only once the backoff step has passed, whatever
  /// asks for it (replenishing, growth under load): a node that is down costs
  /// one attempt per backoff step, not one per pool slot or request.
  bool may_attempt(std::int64_t now) {
    if (failures_in_row_ == 0) return true;
    if (count(conn_state::connecting) > 0) return false;
    if (now < next_attempt_ns_) {
      shell_.arm(next_attempt_ns_);
      return false;
    }
    return true;
  }

  /// Opens connections up to `min`. With no open connection (after the
  /// first start), one attempt at a time, spaced by the backoff.
  void replenish(std::int64_t now) {
    if (stopping() || resolving_) return;
    if (needs_dns_ && (!have_params_ ||
                       (failures_in_row_ > 0 && now - resolved_at_ns_ > limits_.dns_ttl.count()))) {
      if (now >= next_attempt_ns_) {
        resolving_ = true;
        update_state();
        shell_.resolve();
      } else {
        shell_.arm(next_attempt_ns_);
      }
      return;
    }
    int live = static_cast<int>(workers_.size());
    if (live >= limits_.min) return;
    bool first_start = !first_connect_done_ && failures_in_row_ == 0;
    if (count(conn_state::ready) == 0 && !first_start) {
      if (count(conn_state::connecting) > 0 || !may_attempt(now)) return;
      spawn();
      return;
    }
    for (; live < limits_.min && may_attempt(now); ++live)
      spawn();
  }

  void grow(std::int64_t now) {
    if (stopping() || resolving_ || !have_params_) return;
    if (static_cast<int>(workers_.size()) >= limits_.max) return;
    if (count(conn_state::ready) == 0) {
      replenish(now); // down or not yet up: one attempt at a time
      return;
    }
    // Do not open more connections than there are requests to use them.
    int connecting = count(conn_state::connecting);
    if (connecting > static_cast<int>(waiting_.size()) || !may_attempt(now)) return;
    spawn();
  }

  /// Whether the pool may still get another ready connection soon: one is
  /// opening, or one more may be opened now (not at `max`, not waiting out a
  /// backoff step). While it may, nothing is pipelined.
  bool may_grow(std::int64_t now) const {
    if (stopping() || resolving_ || !have_params_) return false;
    if (count(conn_state::connecting) > 0) return true;
    if (static_cast<int>(workers_.size()) >= limits_.max) return false;
    return failures_in_row_ == 0 || now >= next_attempt_ns_;
  }

  /// The best ready connection for a request, or null: an idle one; else, at
  /// `max` only, the least loaded below `pipeline_depth` whose head
  /// statement has run for less than `pipeline_bound`.
  slot* pick(std::int64_t now, bool exclusive) {
    slot* best = nullptr;
    int best_load = 0;
    bool may_pipeline = !exclusive && !may_grow(now);
    for (auto& w : workers_) {
      if (w.state != conn_state::ready || w.pinned) continue;
      auto load = w.in_flight();
      if (w.exclusive) {
        if (load != 0) continue;
        w.exclusive = false; // its statement was answered
      }
      if (load == 0) return &w;
      if (!may_pipeline || load >= limits_.pipeline_depth) continue;
      if (now - w.head_since_ns() >= limits_.pipeline_bound.count()) continue;
      if (best == nullptr || load < best_load) {
        best = &w;
        best_load = load;
      }
    }
    return best;
  }

  void dispatch(std::int64_t now, request&& req, std::int64_t deadline_ns, bool exclusive,
                bool from_queue, bool pin = false) {
    if (slot* w = pick(now, exclusive)) {
      if (w->in_flight() == 0) w->sent_idle_ns = now;
      if (pin) {
        // The session sends its statements to the worker itself (they are
        // not counted in `sent`, nor in the worker's shared answer count).
        w->pinned = true;
        w->exclusive = false;
      } else {
        ++w->sent;
        w->exclusive = exclusive;
      }
      shell_.send(w->worker, std::move(req));
      return;
    }
    if (down()) {
      ++stats_.queries_failed;
      shell_.reject(std::move(req), pool_reject::node_down);
      return;
    }
    if (!from_queue && static_cast<int>(waiting_.size()) >= limits_.max_waiting) {
      ++stats_.requests_rejected;
      shell_.reject(std::move(req), pool_reject::exhausted);
      return;
    }
    if (from_queue)
      waiting_.push_front(waiting_request{std::move(req), deadline_ns, exclusive, pin});
    else
      waiting_.push_back(waiting_request{std::move(req), deadline_ns, exclusive, pin});
    grow(now);
    shell_.arm(deadline_ns);
    if (!from_queue) want_reports(now);
  }

  /// While requests wait, workers report every answer (the policy must hear
  /// of freed capacity); otherwise they need not.
  void want_reports(std::int64_t now) {
    bool want = !waiting_.empty();
    bool raised = false;
    for (auto& w : workers_) {
      if (w.shared->report_answers.load() != want) {
        w.shared->report_answers.store(want);
        raised |= want;
      }
    }
    // A worker may have answered between the check that queued the request
    // and the flag going up, without a report: look again now.
    if (raised) drain_queue(now);
  }

  /// Hands queued requests to connections that can take them, in order.
  void drain_queue(std::int64_t now) {
    while (!waiting_.empty()) {
      auto& front = waiting_.front();
      if (pick(now, front.exclusive) == nullptr && !down()) return;
      auto w = std::move(front);
      waiting_.pop_front();
      if (down()) {
        ++stats_.queries_failed;
        shell_.reject(std::move(w.req), pool_reject::node_down);
        continue;
      }
      dispatch(now, std::move(w.req), w.deadline_ns, w.exclusive, true, w.pin);
    }
    if (waiting_.empty()) want_reports(now);
  }

  /// Counts a failed connection attempt and sets the next one after an
  /// exponential backoff with jitter.
  void note_connect_failure(std::int64_t now, const std::string& error) {
    ++stats_.connect_failures;
    ++failures_in_row_;
    last_error_ = error;
    auto base = std::chrono::nanoseconds{limits_.backoff_initial}.count();
    auto cap = std::chrono::nanoseconds{limits_.backoff_max}.count();
    auto backoff = base;
    for (int i = 1; i < failures_in_row_ && backoff < cap; ++i)
      backoff *= 2;
    backoff = std::min(backoff, cap);
    // Jitter: somewhere in [backoff/2, backoff], so that nodes and pools that
    // failed together do not retry in lock step.
    std::uniform_int_distribution<std::int64_t> jitter{backoff / 2, backoff};
    auto wait = jitter(rng_);
    next_attempt_ns_ = now + wait;
    shell_.connect_failed(error, failures_in_row_, wait);
    if (!first_connect_done_) {
      first_connect_done_ = true;
      shell_.first_attempt_done();
    }
  }

  Shell& shell_;
  pool_limits limits_;
  node_state state_ = node_state::starting;
  std::vector<slot> workers_;
  std::deque<waiting_request> waiting_;
  std::uint32_t next_worker_id_ = 1;
  pool_stats stats_;

  bool connected_ = false;           // connected(true) told, connected(false) not yet
  bool first_connect_done_ = false;  // the first attempt finished (either way)
  bool needs_dns_ = false;           // the host is a name to resolve
  bool have_params_ = false;         // there is an address to connect to
  bool resolving_ = false;           // a resolution runs (at most one)
  std::int64_t resolved_at_ns_ = 0;  // when the address was resolved
  int failures_in_row_ = 0;          // failed attempts since the last success
  std::int64_t next_attempt_ns_ = 0; // no attempt before this (after a failure)
  std::int64_t stop_deadline_ns_ = 0;
  std::string last_error_;
  int illegal_transitions_ = 0;
  std::minstd_rand rng_;
};

inline const char* to_string(node_state s) {
  switch (s) {
  case node_state::starting:
    return "starting";
  case node_state::up:
    return "up";
  case node_state::reconnecting:
    return "reconnecting";
  case node_state::backoff:
    return "backoff";
  case node_state::draining:
    return "draining";
  case node_state::stopped:
    return "stopped";
  }
  return "?";
}

} // namespace pgcm::detail
