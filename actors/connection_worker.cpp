#include "pgcm/actors/connection_worker.hpp"

#include <algorithm>
#include <deque>
#include <vector>

#include <poll.h>
#include <sys/epoll.h>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "assert.hpp"
#include "core_actor.hpp"
#include "inline_unit.hpp"
#include "lease.hpp"
#include "log.hpp"
#include "node_error.hpp"
#include "pgcm/messages/error.hpp"
#include "pq_connection.hpp"
#include "reactor.hpp"
#include "socket_lend.hpp"
#include "tick_timer.hpp"
#include "worker_phase.hpp"

namespace pgcm {

std::int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

query_job make_query_job(std::string sql, std::vector<param> params, caf::timespan timeout) {
  auto now = steady_now_ns();
  return query_job{std::move(sql),
                   std::move(params),
                   now + timeout.count(),
                   std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count(),
                   0,
                   now};
}

namespace {

using namespace std::chrono;

/// How long a worker whose connection closed stays reachable to hand back
/// requests the supervisor routed to it before it read the worker's report.
constexpr auto linger_time = milliseconds{500};

/// How often a parked connection (not watched by the reactor) is checked for
/// a server that closed it meanwhile.
constexpr auto sweep_interval = seconds{1};

struct inflight {
  caf::typed_response_promise<result_set> rp;
  query_job job;
  bool abandoned = false; // already answered (timed out); result is dropped
  bool unsent = false;    // never reached the server: may always be handed back
};

using phase = detail::worker_phase;

worker_state reported(phase p) {
  switch (p) {
  case phase::connecting:
    return worker_state::connecting;
  case phase::ready:
    return worker_state::ready;
  case phase::retiring:
  case phase::draining:
    return worker_state::retiring;
  case phase::closed:
    return worker_state::closed;
  case phase::failed:
    return worker_state::failed;
  }
  return worker_state::failed;
}

struct worker_data {
  static inline const char* name = "pgcm.core.connection_worker"; // a name only (logs)
  worker_config cfg;
  worker_owner_actor owner;
  /// Shared with a facade caller while it is leased (lease.hpp): the last
  /// owner closes it. Touched only while holds() (threading.md I6).
  std::shared_ptr<detail::pq_connection> conn;
  /// With cfg.leases: how the connection moves between this worker and lessees.
  std::shared_ptr<detail::lease_slot> slot;
  /// Whether the reactor watches the socket (not while parked or lent).
  bool watching = false;
  /// Requests that came while the connection was leased: sent when it is back.
  std::deque<inflight> deferred;

  /// Whether this worker holds its connection (not parked, not leased).
  bool holds() const { return !slot || slot->at.load() == detail::lease_slot::worker; }
  phase state = phase::connecting;
  std::uint64_t reg_id = 0;
  int watched_fd = -1;
  /// Set while the socket is lent to the facade caller whose query is the
  /// only one in flight (the reactor does not watch it meanwhile).
  std::shared_ptr<detail::socket_lend> lend;

  /// Ends a lend: the caller stops polling and waits for its reply.
  void take_back() {
    if (lend) {
      lend->revoke();
      lend.reset();
    }
  }

  /// The watched socket if libpq still holds it open, else -1. libpq closes
  /// its socket itself when a read or a connect attempt fails; that number
  /// may belong to another worker's new connection a moment later, and an
  /// EPOLL_CTL_DEL on it would silently unregister that one (it would never
  /// wake up). A socket that was closed has left the epoll set already.
  int owned_watched_fd() const {
    return conn && watched_fd >= 0 && conn->socket() == watched_fd ? watched_fd : -1;
  }
  std::deque<inflight> queue;
  std::int64_t connect_deadline_ns = 0;
  // Timer: one pending tick at a time, for the earliest deadline.
  detail::tick_timer timer;
  // Cancellation of the statement at the head of the pipeline: when it was
  // sent (0: the head is not cancelled).
  std::int64_t cancel_sent_ns = 0;
  std::int64_t last_cancel_ns = 0;
  // Draining: answer what is in flight until then, then close.
  std::int64_t drain_deadline_ns = 0;
  // Counts since the last report.
  worker_report pending_report;
  bool state_changed = false;
  // With cfg.counters: how many of pending_report's answers are already
  // counted in counters->answered, and whether a report flush is scheduled.
  std::int64_t published_answers = 0;
  /// Answers counted in counters->answered before they were given
  /// (deliver_outcomes) and not yet considered for a report.
  bool counted_early = false;
  /// Transactions: answers to session statements since the last report.
  /// The supervisor did not count them as sent, so they are left out of
  /// counters->answered (they still count in the stats).
  std::int64_t session_answers = 0;
  /// query_job::tx of the last statement sent: tx_inside may leave the
  /// connection in a transaction (its session holds it pinned).
  std::uint8_t last_tx = 0;
  bool flush_scheduled = false;
  std::int64_t last_report_ns = 0;
  // Requests to hand back to the supervisor, sent after the next report so
  // that the supervisor never routes them to this worker once it failed.
  std::vector<inflight> retries;
  std::vector<detail::pq_outcome> done;

  /// Connection closed (closed or failed); nothing may touch it any more.
  bool finished() const { return state == phase::closed || state == phase::failed; }
  /// Takes no new requests, answers those in flight.
  bool winding_down() const { return state == phase::retiring || state == phase::draining; }

  caf::error closed_early() const {
    return detail::node_error(errc::shutting_down, cfg.node_id,
                              "connection closed before the query finished (shutting down)");
  }

  ~worker_data() {
    // A parked connection leaves the pool; a leased one is closed by its
    // returner (the last owner).
    if (slot) cfg.leases->orphan(*slot);
    bool mine = holds();
    for (auto& f : deferred)
      if (f.rp.pending()) f.rp.deliver(closed_early());
    // Exactly one answer per request, even when the actor is killed.
    for (auto& f : retries)
      if (f.rp.pending()) f.rp.deliver(closed_early());
    for (auto& f : queue)
      if (!f.abandoned && f.rp.pending()) f.rp.deliver(closed_early());
    // Killed with a statement running (e.g. the supervisor's stop deadline
    // passed before our own drain deadline was handled): cancel it, or the
    // server keeps running it after the connection is closed.
    if (mine && conn && !finished() && !queue.empty() && state != phase::connecting)
      detail::reactor::cancel_async(conn->make_cancel());
    take_back();
    if (cfg.io) cfg.io->remove(reg_id, mine ? owned_watched_fd() : -1);
  }
};

// A core actor: may run inline (src/core_actor.hpp, docs/threading.md I5).
using self_ptr = detail::core_pointer<connection_worker_actor, worker_data>;

/// Counts one answer to `job` in the next report's query-duration histogram
/// (worker-local plain increments; the supervisor adds them to its stats).
void observe_answer(worker_data& st, const query_job& job) {
  detail::observe_duration(st.pending_report, job.start_ns, steady_now_ns());
}

/// Counts an answer to a transaction session's statement (see session_answers).
void note_session(worker_data& st, const query_job& job) {
  if (job.tx != 0) ++st.session_answers;
}

/// Tick generation of the report flush timer (deadline ticks count up from 1).
constexpr std::uint64_t flush_tick = 0;
constexpr std::int64_t report_interval_ns = 250'000'000;

void send_report(self_ptr self, bool force = false) {
  auto& st = self->state;
  auto& r = st.pending_report;
  std::int64_t answers = r.ok + r.failed + r.timed_out + r.retried;
  // Signs of a failover are reported at once (the manager probes every node).
  bool wanted = st.state_changed || (force && answers > 0) || r.failover_signs > 0;
  if (auto* c = st.cfg.counters.get()) {
    answers -= st.session_answers; // the supervisor does not count them as sent
    if (answers > st.published_answers || st.counted_early) {
      // seq_cst on both sides: either the supervisor sees this answer when
      // it re-checks after setting report_answers, or this load sees the flag.
      if (answers > st.published_answers) c->answered.fetch_add(answers - st.published_answers);
      st.published_answers = answers;
      st.counted_early = false;
      wanted = wanted || c->report_answers.load() ||
               steady_now_ns() - st.last_report_ns >= report_interval_ns;
      if (!wanted && !st.flush_scheduled) {
        st.flush_scheduled = true;
        self->delayed_send(self, nanoseconds{report_interval_ns}, tick_atom::value, flush_tick);
      }
    }
  } else {
    wanted = wanted || answers > 0;
  }
  if (wanted) {
    r.worker_id = st.cfg.worker_id;
    r.state = reported(st.state);
    self->send(st.owner, report_atom::value, r);
    r = worker_report{};
    st.published_answers = 0;
    st.session_answers = 0;
    st.state_changed = false;
    st.last_report_ns = steady_now_ns();
  }
  // After the report: the supervisor then knows this worker's state (and
  // whether it is gone) before it routes the requests again.
  for (auto& f : st.retries)
    f.rp.delegate(st.cfg.retry_to, query_atom::value, std::move(f.job));
  st.retries.clear();
}

/// Hands a request back to the supervisor (with the next report). A request
/// that reached the server is retried at most once; one that never did may
/// always be handed back.
void hand_back(worker_data& st, inflight&& f) {
  if (!f.unsent) f.job.attempt = 1;
  ++st.pending_report.retried;
  st.retries.push_back(std::move(f));
}

/// The one place the worker's state changes. An illegal move is a bug: it
/// aborts debug builds; release builds log it and move anyway.
void set_state(self_ptr self, phase s, std::string error = {}) {
  auto& st = self->state;
  if (st.state == s) return;
  if (!legal_transition(st.state, s)) {
    log::error("node {}: connection {}: illegal state transition {} -> {}", st.cfg.node_id,
               st.cfg.worker_id, to_string(st.state), to_string(s));
    PGCM_ASSERT(false, "worker: only legal connection state transitions (worker_phase.hpp)");
  }
  log::debug("node {}: connection {} {} -> {}", st.cfg.node_id, st.cfg.worker_id,
             to_string(st.state), to_string(s));
  // Draining is not worth a report of its own: the owner told it to drain.
  bool report = reported(st.state) != reported(s) && s != phase::draining;
  st.state = s;
  if (report) {
    st.state_changed = true;
    st.pending_report.error = std::move(error);
  }
}

void arm(self_ptr self, bool writable) {
  auto& st = self->state;
  PGCM_ASSERT(st.holds(), "I6: a worker touches its connection only while it holds it");
  st.take_back();
  PGCM_ASSERT(!st.lend, "I8: a lent socket is never watched by the reactor too");
  int fd = st.conn->socket();
  if (fd < 0) return;
  // A socket libpq replaced (e.g. sslmode=prefer falling back to plain) was
  // closed by libpq, which dropped it from the epoll set; its number may
  // already belong to another worker's socket, so never EPOLL_CTL_DEL it.
  st.watched_fd = fd;
  st.watching = true;
  // Connecting (TLS handshake, SCRAM's key derivation) costs milliseconds of
  // CPU: that runs on the scheduler's threads, in parallel for many
  // connections, not one after another on the reactor thread.
  st.cfg.io->watch(st.reg_id, fd, true, writable, st.state != phase::connecting);
}

/// Lends the socket to the facade caller this worker runs on if the query
/// about to be sent is that caller's and will be the only one in flight
/// (socket_lend.hpp).
void lend_socket(self_ptr self, caf::response_promise& rp) {
  auto& st = self->state;
  auto* unit = dynamic_cast<detail::inline_unit*>(self->context());
  if (unit == nullptr) return;
  auto& offer = unit->offered();
  if (!offer || offer->wake_fd < 0 || offer->lent || offer->asker != rp.source().get()) return;
  PGCM_ASSERT(std::this_thread::get_id() == offer->waiter.load(),
              "I8: a socket is lent only to the caller whose thread runs the worker");
  int fd = st.conn->socket();
  // The reactor stops watching it (no interest until the next arm).
  if (fd < 0 || fd != st.watched_fd || !st.cfg.io->watch(st.reg_id, fd, false, false)) return;
  st.watching = false;
  offer->fd = fd;
  offer->worker = caf::actor_cast<caf::actor>(self);
  offer->lent = true;
  st.lend = offer;
}

void schedule(self_ptr self, std::int64_t at_ns) {
  self->state.timer.arm(self, tick_atom::value, at_ns, steady_now_ns());
}

std::string timeout_message(const worker_data& st, const query_job& job) {
  return detail::node_message(st.cfg.node_id, "query timeout (deadline of " +
                                                  std::to_string(job.timeout_ms) + " ms passed)");
}

/// Closes the connection and quits; every request still queued is answered
/// (retried where that is safe, else with `err`).
void finish(self_ptr self, phase final_state, const caf::error& err, bool retry_safe) {
  auto& st = self->state;
  // Ready until now (not draining): the supervisor may have routed requests here.
  bool linger = st.state == phase::ready || st.state == phase::retiring;
  // An open session the server ended (pg_terminate_backend, shutdown): a
  // sign of a failover when this node was the primary.
  if (st.state != phase::connecting && st.conn && st.conn->server_ended_session())
    ++st.pending_report.failover_signs;
  set_state(self, final_state,
            final_state == phase::failed ? to_error_info(err).message : std::string{});
  st.take_back();
  for (auto& f : st.deferred)
    st.queue.push_back(std::move(f));
  st.deferred.clear();
  bool mine = st.holds();
  for (auto& f : st.queue) {
    if (f.abandoned) {
      ++st.pending_report.timed_out;
      note_session(st, f.job);
      continue;
    }
    if ((f.unsent || (retry_safe && f.job.attempt == 0)) && st.cfg.retry_to && f.job.tx == 0 &&
        f.job.deadline_ns > steady_now_ns()) {
      hand_back(st, std::move(f));
    } else {
      f.rp.deliver(err);
      ++st.pending_report.failed;
      note_session(st, f.job);
      observe_answer(st, f.job);
    }
  }
  st.queue.clear();
  // Leave the epoll set while the socket is still ours: once closed, its
  // number may be reused at once by another worker's new connection, whose
  // registration a late EPOLL_CTL_DEL would silently remove.
  if (auto fd = mine ? st.owned_watched_fd() : -1; st.cfg.io && fd >= 0)
    st.cfg.io->remove(0, fd); // id 0: only drop the fd's interest
  st.watched_fd = -1;
  st.watching = false;
  // A leased connection is closed when its lessee gives it back (lease.hpp).
  if (st.conn && mine) st.conn->close();
  send_report(self);
  if (linger && st.cfg.retry_to) {
    // The supervisor may have routed requests here before it read the
    // report: linger a little and hand those back instead of letting them
    // bounce off a dead actor (their callers would see "shutting down").
    st.timer.arm_after(self, tick_atom::value, linger_time);
    return;
  }
  self->quit();
}

void fail_connection(self_ptr self, const std::string& why, bool retry_safe) {
  auto& st = self->state;
  log::info("node {}: connection {} lost: {}", st.cfg.node_id, st.cfg.worker_id, why);
  finish(self, phase::failed,
         detail::node_error(errc::connection_failed, st.cfg.node_id, "connection lost", why),
         retry_safe);
}

/// Cancels the statement at the head of the pipeline if its request was
/// already answered (timed out or drained).
void maybe_cancel_head(self_ptr self) {
  auto& st = self->state;
  if (st.queue.empty() || !st.queue.front().abandoned || st.cancel_sent_ns != 0) return;
  st.cancel_sent_ns = st.last_cancel_ns = steady_now_ns();
  if (!detail::reactor::cancel_async(st.conn->make_cancel())) {
    fail_connection(self, "could not send a cancel request", false);
    return;
  }
  schedule(self, st.cancel_sent_ns + duration_cast<nanoseconds>(st.cfg.cancel_grace).count());
}

bool retryable(const worker_data& st, const detail::pq_outcome& out, const query_job& job) {
  if (job.attempt != 0 || job.tx != 0 || !st.cfg.retry_to || job.deadline_ns <= steady_now_ns())
    return false;
  if (out.stale_statement) return true;
  // The server ended the session (pg_terminate_backend, shutdown): the
  // statement was aborted or never started, nothing was committed.
  if (out.fatal && out.sqlstate.rfind("57P0", 0) == 0) return true;
  // Hit by a cancel that was aimed at an earlier, timed-out statement.
  if (out.sqlstate == "57014" && st.last_cancel_ns != 0 &&
      steady_now_ns() - st.last_cancel_ns < duration_cast<nanoseconds>(seconds{2}).count())
    return true;
  return false;
}

void close_when_idle(self_ptr self) {
  auto& st = self->state;
  if (!st.queue.empty()) return;
  if (st.winding_down()) finish(self, phase::closed, caf::error{}, false);
}

/// Whether an answer says the node may no longer be the primary: a write
/// refused as read-only (25006), or the session ended by the server
/// (57P01 admin shutdown, 57P02 crash shutdown).
bool failover_sign(const detail::pq_outcome& out) {
  return out.sqlstate == "25006" ||
         (out.fatal && (out.sqlstate == "57P01" || out.sqlstate == "57P02"));
}

void deliver_outcomes(self_ptr self) {
  auto& st = self->state;
  if (auto* c = st.cfg.counters.get()) {
    // Counted before they are given (each outcome answers the queue's front
    // once): a caller that gets its answer and sends its next request at once
    // must find this connection free, not busy (the pool would queue the
    // request and open another connection, pool_policy.hpp). The statement
    // behind them starts now; stored first, so that whoever sees the count
    // sees its start too.
    // Answers to a transaction session's statements are not counted: the
    // supervisor did not count them as sent (session_answers).
    auto answering = std::min(st.done.size(), st.queue.size());
    std::int64_t n = 0;
    for (std::size_t k = 0; k < answering; ++k)
      if (st.queue[k].job.tx == 0) ++n;
    if (answering > 0 && st.queue.size() > answering) c->head_since_ns.store(steady_now_ns());
    if (n > 0) {
      c->answered.fetch_add(n);
      st.published_answers += n;
      st.counted_early = true;
    }
  }
  for (auto& out : st.done) {
    if (failover_sign(out)) ++st.pending_report.failover_signs;
    if (st.queue.empty()) break; // cannot happen: one outcome per request sent
    auto f = std::move(st.queue.front());
    st.queue.pop_front();
    st.cancel_sent_ns = 0;
    if (f.abandoned) {
      ++st.pending_report.timed_out;
      note_session(st, f.job);
      continue;
    }
    if (out.ok) {
      out.result.set_node_id(st.cfg.node_id);
      f.rp.deliver(std::move(out.result));
      ++st.pending_report.ok;
      note_session(st, f.job);
      observe_answer(st, f.job);
    } else if (retryable(st, out, f.job)) {
      hand_back(st, std::move(f));
    } else {
      auto code = out.fatal ? errc::connection_failed : errc::query_failed;
      auto what = out.fatal ? "connection lost: " : "query failed: ";
      // The server's text verbatim, whatever it starts with.
      f.rp.deliver(
          make_error(code, detail::node_message(st.cfg.node_id, what) + out.error, out.sqlstate));
      ++st.pending_report.failed;
      note_session(st, f.job);
      observe_answer(st, f.job);
    }
  }
  st.done.clear();
  // A request that leaves a transaction open poisons the connection: it is
  // discarded, never reused (its transaction is rolled back by the server).
  // Except inside a transaction session, which holds the connection pinned.
  if (st.queue.empty() && st.state == phase::ready && st.last_tx != tx_inside &&
      !st.conn->idle_in_session()) {
    log::info("node {}: connection {} left in a transaction; discarding it", st.cfg.node_id,
              st.cfg.worker_id);
    set_state(self, phase::retiring);
  }
  maybe_cancel_head(self);
}

/// Parks the idle connection for facade callers to lease (lease.hpp): the
/// reactor stops watching its socket (a sweep checks it every second).
/// False if it may not be parked now.
bool maybe_park(self_ptr self) {
  auto& st = self->state;
  if (!st.slot || !st.cfg.leases->used.load() || st.state != phase::ready || !st.queue.empty() ||
      (st.cfg.counters && st.cfg.counters->pinned.load()) || !st.deferred.empty() ||
      !st.retries.empty() || st.cancel_sent_ns != 0 || st.conn->pending() != 0 ||
      !st.conn->idle_in_session())
    return false;
  int fd = st.conn->socket();
  if (fd < 0) return false;
  // Its caller's answer was delivered: the caller waits in its mailbox.
  st.take_back();
  if (st.watching && (fd != st.watched_fd || !st.cfg.io->watch(st.reg_id, fd, false, false)))
    return false;
  st.watching = false;
  st.watched_fd = fd;
  // Reports its answers before the connection may be leased (and counted).
  send_report(self);
  if (!st.cfg.leases->park(st.slot)) return false;
  schedule(self, steady_now_ns() + duration_cast<nanoseconds>(sweep_interval).count());
  return true;
}

/// Reads an idle connection: false (and the connection failed) if the
/// server ended the session while it sat in the pool.
bool check_idle(self_ptr self) {
  auto& st = self->state;
  std::string err;
  if (!st.conn->consume(err) || !st.conn->read_results(st.done) ||
      st.conn->server_ended_session()) {
    if (err.empty())
      err =
          st.conn->server_ended_session() ? "the server ended the session" : st.conn->last_error();
    st.done.clear();
    fail_connection(self, err, true);
    return false;
  }
  st.done.clear();
  return true;
}

/// Back from a lease or a sweep: park it again, or let the reactor watch it.
void rest(self_ptr self) {
  auto& st = self->state;
  if (st.finished()) return;
  if (!maybe_park(self) && !st.watching && st.holds()) arm(self, false);
}

void on_readable(self_ptr self, bool writable_too) {
  auto& st = self->state;
  std::string err;
  int flushed = 0;
  if (writable_too) {
    flushed = st.conn->flush();
    if (flushed < 0) return fail_connection(self, st.conn->last_error(), false);
  }
  // Once the server said it ends the session (FATAL 57P0x, possibly as a
  // notice while idle, with the EOF not read yet), whatever is still queued
  // was never executed: it may be retried.
  if (!st.conn->consume(err)) return fail_connection(self, err, st.conn->server_ended_session());
  bool alive = st.conn->read_results(st.done);
  bool server_ended_session = st.conn->server_ended_session();
  for (auto& o : st.done)
    server_ended_session |= o.fatal && o.sqlstate.rfind("57P0", 0) == 0;
  deliver_outcomes(self);
  if (self->state.finished()) return;
  if (!alive || server_ended_session)
    return fail_connection(
        self, alive ? std::string{"the server ended the session"} : st.conn->last_error(),
        server_ended_session);
  if (st.winding_down()) {
    close_when_idle(self);
    if (self->state.finished()) return;
  }
  send_report(self);
  // The caller the socket is lent to ran this and its result is still
  // incomplete (it came in more than one segment): it polls on. While a lend
  // stands the queue holds nothing but that caller's request (a request
  // behind it or a deadline ends the lend; answering it or handing it back
  // empties the queue), so anything queued is its, still unanswered.
  if (st.lend && std::this_thread::get_id() == st.lend->waiter && st.lend->polling) {
    ++st.lend->reads_here;
    if (flushed == 0 && !st.queue.empty()) return;
  }
  if (flushed != 1 && maybe_park(self)) return;
  arm(self, flushed == 1);
}

void on_connect_progress(self_ptr self) {
  auto& st = self->state;
  std::string err;
  switch (st.conn->poll_connect(err)) {
  case detail::pq_connection::connect_status::reading:
    arm(self, false);
    return;
  case detail::pq_connection::connect_status::writing:
    arm(self, true);
    return;
  case detail::pq_connection::connect_status::ready:
    set_state(self, phase::ready);
    log::debug("node {}: connection {} open (backend pid {})", st.cfg.node_id, st.cfg.worker_id,
               st.conn->backend_pid());
    send_report(self);
    if (!maybe_park(self)) arm(self, false);
    return;
  case detail::pq_connection::connect_status::failed:
    return finish(
        self, phase::failed,
        detail::node_error(errc::connection_failed, st.cfg.node_id, "connection failed", err),
        false);
  }
}

void on_tick(self_ptr self) {
  auto& st = self->state;
  if (st.finished()) {
    self->quit(); // end of the linger time
    return;
  }
  if (!st.holds()) {
    // Parked: the sweep. A connection the server closed meanwhile fails now
    // (events, replacement), not when the next caller finds it.
    if (st.cfg.leases->reclaim(*st.slot)) {
      pollfd p{st.conn->socket(), POLLIN, 0};
      if (p.fd >= 0 && ::poll(&p, 1, 0) != 0 && !check_idle(self)) return;
      rest(self);
      return;
    }
    // Leased: only the deferred requests' deadlines and the drain deadline
    // concern this worker; the lessee answers its own.
    auto now = steady_now_ns();
    if (st.state == phase::draining && now >= st.drain_deadline_ns)
      return finish(self, phase::closed,
                    detail::node_error(errc::shutting_down, st.cfg.node_id,
                                       "query cancelled: shutdown deadline passed"),
                    false);
    std::int64_t next = st.state == phase::draining ? st.drain_deadline_ns : 0;
    for (auto it = st.deferred.begin(); it != st.deferred.end();) {
      if (it->job.deadline_ns <= now) {
        it->rp.deliver(make_error(errc::query_timeout, timeout_message(st, it->job)));
        ++st.pending_report.timed_out;
        observe_answer(st, it->job);
        it = st.deferred.erase(it);
      } else {
        if (next == 0 || it->job.deadline_ns < next) next = it->job.deadline_ns;
        ++it;
      }
    }
    send_report(self);
    schedule(self, next);
    return;
  }
  if (st.lend)
    arm(self, false); // a request may be answered here: the caller must not wait on the socket
  auto now = steady_now_ns();
  if (st.state == phase::connecting) {
    if (now >= st.connect_deadline_ns)
      return finish(self, phase::failed,
                    detail::node_error(errc::connection_failed, st.cfg.node_id, "connection failed",
                                       "timeout after " +
                                           std::to_string(st.cfg.connect_timeout.count()) + " ms"),
                    false);
    schedule(self, st.connect_deadline_ns);
    return;
  }
  bool draining = st.state == phase::draining;
  if (draining && now >= st.drain_deadline_ns) {
    // Grace period over: cancel what runs, answer everything, close.
    if (!st.queue.empty() && !st.queue.front().abandoned)
      detail::reactor::cancel_async(st.conn->make_cancel());
    return finish(self, phase::closed,
                  detail::node_error(errc::shutting_down, st.cfg.node_id,
                                     "query cancelled: shutdown deadline passed"),
                  false);
  }
  std::int64_t next = draining ? st.drain_deadline_ns : 0;
  auto earliest = [&](std::int64_t t) {
    if (t > 0 && (next == 0 || t < next)) next = t;
  };
  for (auto& f : st.queue) {
    if (f.abandoned) continue;
    if (f.job.deadline_ns <= now) {
      f.abandoned = true;
      f.rp.deliver(make_error(errc::query_timeout, timeout_message(st, f.job)));
      observe_answer(st, f.job);
    } else {
      earliest(f.job.deadline_ns);
    }
  }
  if (st.cancel_sent_ns != 0 &&
      now - st.cancel_sent_ns >= duration_cast<nanoseconds>(st.cfg.cancel_grace).count())
    return fail_connection(self, "statement did not stop after cancel", false);
  maybe_cancel_head(self);
  if (self->state.finished()) return;
  if (st.cancel_sent_ns != 0)
    earliest(st.cancel_sent_ns + duration_cast<nanoseconds>(st.cfg.cancel_grace).count());
  schedule(self, next);
}

/// Sends one request (or answers it at once).
void execute(self_ptr self, caf::typed_response_promise<result_set> rp, query_job job) {
  auto& st = self->state;
  if (job.deadline_ns <= steady_now_ns()) {
    ++st.pending_report.timed_out;
    note_session(st, job);
    rp.deliver(make_error(errc::query_timeout, timeout_message(st, job)));
    observe_answer(st, job);
    send_report(self);
    return;
  }
  if (st.state != phase::ready) {
    // Raced with a state change the supervisor has not seen yet; the
    // statement was not sent, so hand it back.
    if (st.cfg.retry_to && job.tx == 0) {
      hand_back(st, inflight{rp, std::move(job), false, true});
      send_report(self);
      return;
    }
    ++st.pending_report.failed;
    note_session(st, job);
    rp.deliver(
        detail::node_error(errc::connection_failed, st.cfg.node_id, "connection not available"));
    send_report(self);
    return;
  }
  if (st.slot && !st.cfg.leases->reclaim(*st.slot)) {
    // A facade caller holds the connection: sent when it gives it back.
    auto deadline = job.deadline_ns;
    st.deferred.push_back(inflight{rp, std::move(job), false, true});
    schedule(self, deadline);
    return;
  }
  std::string err;
  if (st.queue.empty()) {
    // Check an idle connection before use: the server may have ended the
    // session (pg_terminate_backend, restart) while it sat in the pool.
    if (!st.conn->consume(err) || !st.conn->read_results(st.done) ||
        st.conn->server_ended_session()) {
      if (err.empty())
        err = st.conn->server_ended_session() ? "the server ended the session"
                                              : st.conn->last_error();
      st.queue.push_back(inflight{rp, std::move(job), false, true});
      fail_connection(self, err, true);
      return;
    }
    st.done.clear();
  }
  bool behind_a_lent_one = !st.queue.empty() && st.lend;
  // Lent before the query leaves: its answer may come back before this
  // thread runs again, and the reactor must not take it.
  if (st.queue.empty()) lend_socket(self, rp);
  if (!st.conn->send(job.sql, job.params, err)) {
    st.queue.push_back(inflight{rp, std::move(job), false, true});
    fail_connection(self, err, true); // nothing reached the server
    return;
  }
  auto deadline = job.deadline_ns;
  st.last_tx = job.tx;
  st.queue.push_back(inflight{rp, std::move(job), false});
  int flushed = st.conn->flush();
  if (flushed < 0) {
    fail_connection(self, st.conn->last_error(), false);
    return;
  }
  // A request queued behind a lent one ends the lend: its caller waits in
  // its mailbox and the reactor reads for both (a lent socket is never
  // watched by the reactor too, so no answer wakes two threads).
  // A connection back from the lease pool is not watched yet.
  if (flushed == 1 || behind_a_lent_one || (!st.watching && !st.lend)) arm(self, flushed == 1);
  schedule(self, deadline);
  return;
}

connection_worker_actor::behavior_type connection_worker(self_ptr self, worker_owner_actor owner,
                                                         worker_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.owner = std::move(owner);
  st.conn = std::make_shared<detail::pq_connection>(st.cfg.statement_cache);
  if (st.cfg.leases && st.cfg.counters && st.cfg.slot) {
    st.slot = st.cfg.slot;
    st.slot->conn = st.conn;
    st.slot->owner = caf::actor_cast<caf::weak_actor_ptr>(self->ctrl());
    st.slot->counters = st.cfg.counters;
  }
  st.reg_id = st.cfg.io->add(caf::actor_cast<caf::actor>(self));
  std::string err;
  if (!st.conn->start(*st.cfg.params, err)) {
    finish(self, phase::failed,
           detail::node_error(errc::connection_failed, st.cfg.node_id, "connection failed", err),
           false);
  } else {
    st.connect_deadline_ns =
        steady_now_ns() + duration_cast<nanoseconds>(st.cfg.connect_timeout).count();
    schedule(self, st.connect_deadline_ns);
    on_connect_progress(self);
  }
  return {
      [=](execute_atom, query_job& job) -> caf::result<result_set> {
        auto rp = self->make_response_promise<result_set>();
        execute(self, rp, std::move(job));
        return rp;
      },
      [=](lease_atom, std::int32_t how, std::string& why) {
        auto& st = self->state;
        if (!st.slot) return;
        PGCM_ASSERT(st.holds(), "I6: a lease is given back before its worker hears of it");
        if (st.finished()) {
          st.conn->close(); // came back after the connection was closed
          return;
        }
        auto kind = static_cast<detail::lease_return>(how);
        if (kind == detail::lease_return::broken)
          return fail_connection(self, why.empty() ? std::string{"connection lost"} : why, true);
        if (kind == detail::lease_return::cancelled) {
          // The lessee answered at its deadline and sent a cancel: read the
          // statement's end here, or drop the connection after the grace.
          inflight f;
          f.abandoned = true;
          f.job.start_ns = steady_now_ns();
          st.queue.push_back(std::move(f));
          st.cancel_sent_ns = st.last_cancel_ns = steady_now_ns();
          st.slot->last_cancel_ns = st.last_cancel_ns; // a late cancel may hit a lessee's statement
          schedule(self,
                   st.cancel_sent_ns + duration_cast<nanoseconds>(st.cfg.cancel_grace).count());
        }
        if (kind == detail::lease_return::check && !check_idle(self)) return;
        if (kind == detail::lease_return::retire && st.state == phase::ready) {
          log::info("node {}: connection {} left in a transaction; discarding it", st.cfg.node_id,
                    st.cfg.worker_id);
          set_state(self, phase::retiring);
        }
        if (st.state != phase::ready) {
          // Retiring or draining: what came meanwhile was never sent.
          for (auto& f : st.deferred)
            hand_back(st, std::move(f));
          st.deferred.clear();
          send_report(self);
          close_when_idle(self);
          if (!st.finished() && !st.watching) arm(self, false);
          return;
        }
        auto waiting = std::move(st.deferred);
        st.deferred.clear();
        for (auto& f : waiting)
          execute(self, std::move(f.rp), std::move(f.job));
        if (st.finished()) return;
        send_report(self);
        rest(self);
      },
      [=](io_atom, std::uint32_t events) {
        auto& st = self->state;
        st.watching = false;     // EPOLLONESHOT: the reactor watches it no more
        if (!st.holds()) return; // a late wake-up: parked or leased meanwhile
        if (st.state == phase::connecting)
          on_connect_progress(self);
        else if (st.state == phase::ready || st.winding_down())
          on_readable(self, (events & EPOLLOUT) != 0);
      },
      [=](tick_atom, std::uint64_t gen) {
        if (gen == flush_tick) {
          self->state.flush_scheduled = false;
          send_report(self, true);
        } else if (self->state.timer.fired(gen)) {
          on_tick(self);
        }
      },
      [=](drain_atom, caf::timespan grace) {
        auto& st = self->state;
        if (st.finished()) {
          self->quit(); // lingering after its connection closed
          return;
        }
        if (st.state == phase::connecting) return finish(self, phase::closed, caf::error{}, false);
        set_state(self, phase::draining);
        st.drain_deadline_ns = steady_now_ns() + grace.count();
        if (st.slot && !st.cfg.leases->reclaim(*st.slot)) {
          // Leased: it comes back by the lessee's deadline or the pool's stop
          // deadline; else it is closed by its lessee (lease.hpp).
          schedule(self, st.drain_deadline_ns);
          return;
        }
        if (st.queue.empty()) return finish(self, phase::closed, caf::error{}, false);
        schedule(self, st.drain_deadline_ns);
      },
  };
}

} // namespace

connection_worker_actor spawn_connection_worker(caf::actor_system& sys, worker_owner_actor owner,
                                                worker_config cfg) {
  return sys.spawn(connection_worker, std::move(owner), std::move(cfg));
}

} // namespace pgcm
