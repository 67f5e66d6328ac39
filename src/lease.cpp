#include "lease.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <unordered_map>

#include <poll.h>

#include <caf/send.hpp>

#include "assert.hpp"
#include "node_error.hpp"
#include "pgcm/actors/connection_worker.hpp"
#include "pgcm/messages/error.hpp"
#include "pq_connection.hpp"
#include "reactor.hpp"

namespace pgcm::detail {

using namespace std::chrono;

namespace {
std::atomic<std::uint64_t> taken_total{0};
} // namespace

std::uint64_t leases_taken() {
  return taken_total.load();
}

// -- the pool -------------------------------------------------------------------

bool lease_pool::park(const std::shared_ptr<lease_slot>& s) {
  std::lock_guard<std::mutex> guard{mtx_};
  PGCM_ASSERT(s->at.load() == lease_slot::worker, "I6: only the worker holding it parks it");
  if (closed.load()) return false;
  s->wanted = false;
  s->quiet_since_ns = steady_now_ns();
  if (hand_over(s)) return true;
  s->at.store(lease_slot::parked);
  idle_.push_back(s);
  return true;
}

/// How long a waiting caller lets returners keep their connection (no
/// wake-up per query) before one is handed to it.
constexpr std::int64_t handoff_after_ns = 2'000'000;

bool lease_pool::hand_over(const std::shared_ptr<lease_slot>& s) {
  if (waiters_.empty()) return false;
  ++leased_now_;
  auto* w = waiters_.front();
  waiters_.pop_front();
  s->at.store(lease_slot::leased);
  s->holder.store(w->thread);
  // Its statement starts now (pool_policy.hpp: no pipelining behind a long
  // one), stored before the count that makes it busy.
  s->counters->head_since_ns.store(steady_now_ns());
  s->counters->leased.fetch_add(1);
  taken_total.fetch_add(1, std::memory_order_relaxed);
  w->got = s;
  w->cv.notify_one();
  return true;
}

bool lease_pool::reclaim(lease_slot& s) {
  std::lock_guard<std::mutex> guard{mtx_};
  switch (s.at.load()) {
  case lease_slot::worker:
    return true;
  case lease_slot::parked:
    idle_.erase(std::find_if(idle_.begin(), idle_.end(),
                             [&](const std::shared_ptr<lease_slot>& x) { return x.get() == &s; }));
    s.at.store(lease_slot::worker);
    return true;
  default:
    s.wanted = true;
    return false;
  }
}

void lease_pool::orphan(lease_slot& s) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (s.at.load() == lease_slot::parked) {
    idle_.erase(std::find_if(idle_.begin(), idle_.end(),
                             [&](const std::shared_ptr<lease_slot>& x) { return x.get() == &s; }));
    s.at.store(lease_slot::worker);
  }
  s.orphaned = true;
}

std::shared_ptr<lease_slot> lease_pool::take(std::int64_t wait_until) {
  std::unique_lock<std::mutex> guard{mtx_};
  if (closed.load()) return nullptr;
  if (idle_.empty()) {
    auto now = steady_now_ns();
    if (wait_until == 0 || !full.load() || leased_now_ == 0 || wait_until <= now) return nullptr;
    // At most one waiter per leased connection: beyond that, requests are
    // better pipelined by the supervisor (overflow) than queued here.
    if (static_cast<int>(waiters_.size()) >= leased_now_) return nullptr;
    waiter me;
    me.thread = std::this_thread::get_id();
    me.since_ns = now;
    waiters_.push_back(&me);
    // Woken by a handoff, a returner finding no connection leased any more,
    // the pool closing or growing, or the deadline; once, at the handoff
    // delay, to take a connection parked meanwhile (returners park theirs
    // while the first waiter is younger than that).
    bool looked = false;
    while (!me.got && !closed.load() && full.load() && leased_now_ > 0 &&
           (!looked || idle_.empty())) {
      auto wake = looked ? wait_until : std::min(wait_until, me.since_ns + handoff_after_ns);
      me.cv.wait_until(guard, steady_clock::time_point{nanoseconds{wake}});
      now = steady_now_ns();
      if (now >= wait_until) break;
      if (now >= me.since_ns + handoff_after_ns) looked = true;
    }
    if (me.got) return std::move(me.got);
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &me));
    if (idle_.empty() || closed.load()) return nullptr;
  }
  // The most recently parked one: its session is the warmest.
  auto s = std::move(idle_.back());
  idle_.pop_back();
  s->at.store(lease_slot::leased);
  s->holder.store(std::this_thread::get_id());
  // Counted in flight before anyone can see it gone from the idle list; its
  // statement starts now, stored first (pool_policy.hpp pick).
  s->counters->head_since_ns.store(steady_now_ns());
  s->counters->leased.fetch_add(1);
  ++leased_now_;
  taken_total.fetch_add(1, std::memory_order_relaxed);
  return s;
}

void lease_pool::give_back(std::shared_ptr<lease_slot> s, lease_return how, const std::string& why,
                           const worker_report& counts) {
  PGCM_ASSERT(s->at.load() == lease_slot::leased && s->holder.load() == std::this_thread::get_id(),
              "I6: a lease is given back by the thread holding it");
  bool by_message = false;
  bool drop = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    s->holder.store(std::thread::id{});
    if (counts.has_counts()) {
      counts_.add_counts(counts);
      has_counts_ = true;
    }
    if (s->orphaned) {
      s->at.store(lease_slot::worker);
      drop = true; // its worker is gone: the last owner (us) closes it
    } else if (how != lease_return::ok || s->wanted || closed.load()) {
      // The worker takes it back: it has requests for it, the pool stops,
      // or something is wrong with it.
      s->wanted = false;
      s->at.store(lease_slot::worker);
      by_message = true;
    } else {
      auto returned_at = steady_now_ns();
      s->quiet_since_ns = returned_at;
      if (waiters_.empty() || returned_at - waiters_.front()->since_ns < handoff_after_ns ||
          !hand_over(s)) {
        s->at.store(lease_slot::parked);
        idle_.push_back(s);
      }
    }
    s->counters->leased.fetch_sub(1);
    --leased_now_;
    // Waiters wait only for leased connections: none left, they go to the
    // supervisor.
    if (leased_now_ == 0)
      for (auto* w : waiters_)
        w->cv.notify_one();
  }
  if (by_message) {
    // A worker gone meanwhile orphans the slot in its destructor; the
    // message is then dropped and the connection closes with its last owner.
    if (auto worker = s->owner.lock())
      caf::anon_send(caf::actor_cast<caf::actor>(worker), lease_atom::value,
                     static_cast<std::int32_t>(how), why);
  }
  if (drop) {
    s->conn.reset();
    return;
  }
  // The supervisor hears of leased queries at most every 250 ms (stats).
  auto now = steady_now_ns();
  auto last = last_notify_ns.load();
  bool waiting = s->counters->report_answers.load(); // the supervisor has requests queued
  // A sign of a failover (issue 10) is told at once: the manager probes every node.
  bool urgent = waiting || counts.failover_signs > 0;
  if ((urgent || now - last >= 250'000'000) &&
      (counts.failover_signs > 0 || last_notify_ns.compare_exchange_strong(last, now)))
    if (auto sup = supervisor.lock())
      caf::anon_send(caf::actor_cast<caf::actor>(sup), lease_atom::value, std::int32_t{0},
                     std::string{});
}

void lease_pool::close(std::int64_t stop_deadline) {
  std::lock_guard<std::mutex> guard{mtx_};
  stop_deadline_ns.store(stop_deadline);
  closed.store(true);
  for (auto* w : waiters_)
    w->cv.notify_one();
}

void lease_pool::set_full(bool value) {
  std::lock_guard<std::mutex> guard{mtx_};
  full.store(value);
  if (!value)
    for (auto* w : waiters_)
      w->cv.notify_one(); // the pool may grow: ask the supervisor instead
}

std::int64_t lease_pool::waiting() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return static_cast<std::int64_t>(waiters_.size());
}

worker_report lease_pool::take_counts() {
  std::lock_guard<std::mutex> guard{mtx_};
  worker_report out;
  if (has_counts_) {
    out = counts_;
    counts_ = worker_report{};
    has_counts_ = false;
  }
  return out;
}

std::size_t lease_pool::parked() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return idle_.size();
}

// -- the registry ---------------------------------------------------------------

namespace {

std::mutex registry_mtx;
std::unordered_map<const caf::actor_control_block*, std::weak_ptr<lease_pool>>& registry() {
  static std::unordered_map<const caf::actor_control_block*, std::weak_ptr<lease_pool>> r;
  return r;
}

} // namespace

std::shared_ptr<lease_pool> find_lease_pool(const caf::actor_control_block* sup) {
  std::lock_guard<std::mutex> guard{registry_mtx};
  auto it = registry().find(sup);
  return it == registry().end() ? nullptr : it->second.lock();
}

void register_lease_pool(const caf::actor_control_block* sup, std::shared_ptr<lease_pool> p) {
  std::lock_guard<std::mutex> guard{registry_mtx};
  registry()[sup] = std::move(p);
}

void unregister_lease_pool(const caf::actor_control_block* sup) {
  std::lock_guard<std::mutex> guard{registry_mtx};
  registry().erase(sup);
}

// -- running a query on a lease ---------------------------------------------------

void observe_duration(worker_report& r, std::int64_t start_ns, std::int64_t now_ns) {
  auto us = std::max<std::int64_t>(0, (now_ns - start_ns) / 1000);
  ++r.answers_timed;
  r.answers_duration_us += us;
#define PGCM_X(name, bound_us)                                                                     \
  if (us <= (bound_us)) {                                                                          \
    ++r.name;                                                                                      \
  } else
  PGCM_QUERY_DURATION_BUCKETS(PGCM_X) {}
#undef PGCM_X
}

namespace {

/// A slice of waiting: a lessee looks at the pool's stop deadline this often
/// while its statement runs (only long statements see it).
constexpr std::int64_t stop_check_ns = 100'000'000;

bool ended_session(const pq_connection& c, const pq_outcome& o) {
  return c.server_ended_session() || (o.fatal && o.sqlstate.rfind("57P0", 0) == 0);
}

std::string timeout_text(const lease_pool& pool, const query_job& job) {
  return node_message(pool.node_id, "query timeout (deadline of " + std::to_string(job.timeout_ms) +
                                        " ms passed)");
}

} // namespace

leased_query::~leased_query() {
  // Every driver runs its queries to their end; a lease never leaks.
  PGCM_ASSERT(!running_, "I6: a leased query ends before its owner goes");
}

bool leased_query::start(std::int64_t wait_until) {
  wait_until_ = wait_until;
  auto& pool = *pool_;
  // A few connections at most: one found closed by the server, one retry.
  while (tries_ < 4) {
    ++tries_;
    s_ = pool.take(wait_until);
    if (!s_) return false;
    auto& conn = *s_->conn;
    counts_ = worker_report{};
    fd_ = conn.socket();
    if (fd_ < 0) {
      pool.give_back(std::move(s_), lease_return::broken, "connection has no socket", counts_);
      continue;
    }
    if (steady_now_ns() - s_->quiet_since_ns >= lease_recent_ns) {
      // Idle a while and readable: the server ended the session (or sent a
      // notice): its worker reads it and fails or parks it again. Busy
      // moments ago: not checked (a session ended meanwhile answers the
      // statement with the server's FATAL message: retried, settle()).
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 0) != 0) {
        pool.give_back(std::move(s_), lease_return::check, {}, counts_);
        continue;
      }
    }
    std::string err;
    if (!conn.send(job_->sql, job_->params, err)) {
      pool.give_back(std::move(s_), lease_return::broken, err,
                     counts_); // nothing reached the server
      continue;
    }
    flushing_ = conn.flush();
    done_.clear();
    broken_ = flushing_ < 0;
    broken_why_ = broken_ ? conn.last_error() : std::string{};
    cancelled_ = false;
    stopped_ = false;
    running_ = true;
    if (broken_) settle();
    return running_;
  }
  return false;
}

short leased_query::events() const {
  return static_cast<short>(POLLIN | (flushing_ == 1 ? POLLOUT : 0));
}

std::int64_t leased_query::wake_at(std::int64_t now) const {
  auto stop_at = pool_->stop_deadline_ns.load();
  // Only long statements see the pool's stop deadline: looked at this often.
  if (stop_at == 0) return std::min(job_->deadline_ns, now + stop_check_ns);
  return std::min(job_->deadline_ns, stop_at);
}

void leased_query::on_time(std::int64_t now) {
  if (!running_) return;
  auto stop_at = pool_->stop_deadline_ns.load();
  if (now < job_->deadline_ns && (stop_at == 0 || now < stop_at)) return;
  // Out of time (or the pool stops): cancel on the server and answer now;
  // the worker reads the statement's end (threading.md I7).
  stopped_ = now < job_->deadline_ns;
  cancelled_ = true;
  if (!reactor::cancel_async(s_->conn->make_cancel())) {
    broken_ = true;
    broken_why_ = "could not send a cancel request";
  }
  settle();
}

void leased_query::fail(std::string why) {
  broken_ = true;
  broken_why_ = std::move(why);
  settle();
}

void leased_query::on_poll_failed() {
  if (running_) fail("poll failed");
}

void leased_query::on_ready(short revents) {
  if (!running_) return;
  auto& conn = *s_->conn;
  if ((revents & POLLOUT) != 0) {
    flushing_ = conn.flush();
    if (flushing_ < 0) return fail(conn.last_error());
  }
  if ((revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
    std::string err;
    if (!conn.consume(err)) return fail(err);
    if (!conn.read_results(done_)) return fail(conn.last_error());
  }
  if (!done_.empty()) settle();
}

void leased_query::settle() {
  auto& pool = *pool_;
  auto& job = *job_;
  auto& conn = *s_->conn;
  running_ = false;
  auto now = steady_now_ns();
  observe_duration(counts_, job.start_ns, now);
  if (cancelled_) {
    out_.kind = lease_outcome::answered;
    if (stopped_) {
      ++counts_.failed;
      out_.error = node_error(errc::shutting_down, pool.node_id,
                              "query cancelled: shutdown deadline passed");
    } else {
      // Counted as timed out by the worker when the statement ends.
      out_.error = make_error(errc::query_timeout, timeout_text(pool, job));
    }
    pool.give_back(std::move(s_), broken_ ? lease_return::broken : lease_return::cancelled,
                   broken_why_, counts_);
    return;
  }
  if (broken_ || done_.empty()) {
    // The statement was sent: it may have run. Only a session the server
    // said it ended is certain not to have run it.
    bool retry = conn.server_ended_session() && job.attempt == 0;
    auto why = broken_why_.empty() ? std::string{"connection lost"} : broken_why_;
    if (retry) {
      worker_report r;
      r.retried = 1;
      pool.give_back(std::move(s_), lease_return::broken, why, r);
      job.attempt = 1;
      start(wait_until_);
      return;
    }
    ++counts_.failed;
    pool.give_back(std::move(s_), lease_return::broken, why, counts_);
    out_.kind = lease_outcome::answered;
    out_.error = node_error(errc::connection_failed, pool.node_id, "connection lost", why);
    return;
  }
  auto& o = done_.front();
  bool ended = ended_session(conn, o);
  // A write refused as read-only or a session the server ended: the node
  // may no longer be the primary (connection_worker.cpp failover_sign).
  if (o.sqlstate == "25006" || (o.fatal && (o.sqlstate == "57P01" || o.sqlstate == "57P02")))
    ++counts_.failover_signs;
  bool retryable = job.attempt == 0 && job.deadline_ns > now &&
                   (o.stale_statement || (o.fatal && o.sqlstate.rfind("57P0", 0) == 0) ||
                    (o.sqlstate == "57014" && s_->last_cancel_ns != 0 &&
                     now - s_->last_cancel_ns < duration_cast<nanoseconds>(seconds{2}).count()));
  auto how = ended || o.fatal ? lease_return::broken : lease_return::ok;
  if (how == lease_return::ok && !conn.idle_in_session()) how = lease_return::retire;
  std::string why = how == lease_return::broken ? (ended ? "the server ended the session" : o.error)
                                                : std::string{};
  if (retryable) {
    worker_report r;
    r.retried = 1;
    pool.give_back(std::move(s_), how, why, r);
    job.attempt = 1;
    start(wait_until_);
    return;
  }
  out_.kind = lease_outcome::answered;
  if (o.ok) {
    ++counts_.ok;
    o.result.set_node_id(pool.node_id);
    out_.result = std::move(o.result);
  } else {
    ++counts_.failed;
    auto code = o.fatal ? errc::connection_failed : errc::query_failed;
    auto what = o.fatal ? "connection lost: " : "query failed: ";
    out_.error = make_error(code, node_message(pool.node_id, what) + o.error, o.sqlstate);
  }
  pool.give_back(std::move(s_), how, why, counts_);
}

void drive_leased(const std::vector<leased_query*>& qs) {
#ifndef NDEBUG
  // One lease per pool per caller: a caller never holds two connections of
  // the same pool, so it never waits on a pool for what it holds itself.
  for (std::size_t i = 0; i < qs.size(); ++i)
    for (std::size_t j = i + 1; j < qs.size(); ++j)
      PGCM_ASSERT(&qs[i]->pool() != &qs[j]->pool(), "I6: at most one lease per pool per caller");
#endif
  std::vector<pollfd> fds;
  std::vector<leased_query*> polled;
  fds.reserve(qs.size());
  polled.reserve(qs.size());
  for (;;) {
    auto now = steady_now_ns();
    fds.clear();
    polled.clear();
    std::int64_t until = 0;
    for (auto* q : qs) {
      q->on_time(now); // past a deadline: cancelled and answered
      if (!q->running()) continue;
      auto at = q->wake_at(now);
      until = polled.empty() ? at : std::min(until, at);
      fds.push_back(pollfd{q->fd(), q->events(), 0});
      polled.push_back(q);
    }
    if (polled.empty()) return;
    auto wait_ms = std::max<std::int64_t>(0, (until - now + 999'999) / 1'000'000);
    int n = ::poll(fds.data(), static_cast<nfds_t>(fds.size()),
                   static_cast<int>(std::min<std::int64_t>(wait_ms, 1 << 30)));
    if (n < 0 && errno != EINTR) {
      for (auto* q : polled)
        q->on_poll_failed();
      return;
    }
    if (n <= 0) continue;
    for (std::size_t i = 0; i < polled.size(); ++i)
      if (fds[i].revents != 0) polled[i]->on_ready(fds[i].revents);
  }
}

lease_outcome run_leased(lease_pool& pool, query_job& job) {
  leased_query q{pool, job};
  if (q.start(job.deadline_ns)) drive_leased({&q});
  return std::move(q.outcome());
}

} // namespace pgcm::detail
