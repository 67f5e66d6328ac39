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
    if (counts.answers_timed + counts.retried + counts.failed + counts.ok + counts.timed_out +
            counts.failover_signs >
        0) {
      counts_.failover_signs += counts.failover_signs;
      counts_.ok += counts.ok;
      counts_.failed += counts.failed;
      counts_.timed_out += counts.timed_out;
      counts_.retried += counts.retried;
      counts_.answers_timed += counts.answers_timed;
      counts_.answers_duration_us += counts.answers_duration_us;
#define PGCM_X(name, bound_us) counts_.name += counts.name;
      PGCM_QUERY_DURATION_BUCKETS(PGCM_X)
#undef PGCM_X
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
    } else if (waiters_.empty() ||
               steady_now_ns() - waiters_.front()->since_ns < handoff_after_ns || !hand_over(s)) {
      s->at.store(lease_slot::parked);
      idle_.push_back(s);
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

lease_outcome run_leased(lease_pool& pool, query_job& job) {
  lease_outcome out;
  // A few connections at most: one found closed by the server, one retry.
  for (int tries = 0; tries < 4; ++tries) {
    auto s = pool.take(job.deadline_ns);
    if (!s) return out;
    auto& conn = *s->conn;
    worker_report counts;
    int fd = conn.socket();
    if (fd < 0) {
      pool.give_back(std::move(s), lease_return::broken, "connection has no socket", counts);
      continue;
    }
    {
      // Readable while idle: the server ended the session (or sent a
      // notice): its worker reads it and fails or parks it again.
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 0) != 0) {
        pool.give_back(std::move(s), lease_return::check, {}, counts);
        continue;
      }
    }
    std::string err;
    if (!conn.send(job.sql, job.params, err)) {
      pool.give_back(std::move(s), lease_return::broken, err, counts); // nothing reached the server
      continue;
    }
    int flushing = conn.flush();
    std::vector<pq_outcome> done;
    bool broken = flushing < 0;
    std::string broken_why = broken ? conn.last_error() : std::string{};
    bool cancelled = false;
    bool stopped = false;
    while (!broken && done.empty()) {
      auto now = steady_now_ns();
      auto stop_at = pool.stop_deadline_ns.load();
      if (now >= job.deadline_ns || (stop_at != 0 && now >= stop_at)) {
        // Out of time (or the pool stops): cancel on the server and answer
        // now; the worker reads the statement's end (threading.md I7).
        stopped = now < job.deadline_ns;
        cancelled = true;
        if (!reactor::cancel_async(conn.make_cancel())) {
          broken = true;
          broken_why = "could not send a cancel request";
        }
        break;
      }
      std::int64_t until = job.deadline_ns;
      if (stop_at == 0)
        until = std::min(until, now + stop_check_ns);
      else
        until = std::min(until, stop_at);
      auto wait_ms = std::max<std::int64_t>(0, (until - now + 999'999) / 1'000'000);
      pollfd p{fd, static_cast<short>(POLLIN | (flushing == 1 ? POLLOUT : 0)), 0};
      int n = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(wait_ms, 1 << 30)));
      if (n < 0 && errno != EINTR) {
        broken = true;
        broken_why = "poll failed";
        break;
      }
      if (n <= 0) continue;
      if ((p.revents & POLLOUT) != 0) {
        flushing = conn.flush();
        if (flushing < 0) {
          broken = true;
          broken_why = conn.last_error();
          break;
        }
      }
      if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        if (!conn.consume(err)) {
          broken = true;
          broken_why = err;
          break;
        }
        if (!conn.read_results(done)) {
          broken = true;
          broken_why = conn.last_error();
          break;
        }
      }
    }
    auto now = steady_now_ns();
    observe_duration(counts, job.start_ns, now);
    if (cancelled) {
      out.kind = lease_outcome::answered;
      if (stopped) {
        ++counts.failed;
        out.error = node_error(errc::shutting_down, pool.node_id,
                               "query cancelled: shutdown deadline passed");
      } else {
        // Counted as timed out by the worker when the statement ends.
        out.error = make_error(errc::query_timeout, timeout_text(pool, job));
      }
      pool.give_back(std::move(s), broken ? lease_return::broken : lease_return::cancelled,
                     broken_why, counts);
      return out;
    }
    if (broken || done.empty()) {
      // The statement was sent: it may have run. Only a session the server
      // said it ended is certain not to have run it.
      bool retry = conn.server_ended_session() && job.attempt == 0;
      auto why = broken_why.empty() ? std::string{"connection lost"} : broken_why;
      if (retry) {
        worker_report r;
        r.retried = 1;
        pool.give_back(std::move(s), lease_return::broken, why, r);
        job.attempt = 1;
        continue;
      }
      ++counts.failed;
      pool.give_back(std::move(s), lease_return::broken, why, counts);
      out.kind = lease_outcome::answered;
      out.error = node_error(errc::connection_failed, pool.node_id, "connection lost", why);
      return out;
    }
    auto& o = done.front();
    bool ended = ended_session(conn, o);
    // A write refused as read-only or a session the server ended: the node
    // may no longer be the primary (connection_worker.cpp failover_sign).
    if (o.sqlstate == "25006" || (o.fatal && (o.sqlstate == "57P01" || o.sqlstate == "57P02")))
      ++counts.failover_signs;
    bool retryable = job.attempt == 0 && job.deadline_ns > now &&
                     (o.stale_statement || (o.fatal && o.sqlstate.rfind("57P0", 0) == 0) ||
                      (o.sqlstate == "57014" && s->last_cancel_ns != 0 &&
                       now - s->last_cancel_ns < duration_cast<nanoseconds>(seconds{2}).count()));
    auto how = ended || o.fatal ? lease_return::broken : lease_return::ok;
    if (how == lease_return::ok && !conn.idle_in_session()) how = lease_return::retire;
    std::string why = how == lease_return::broken
                          ? (ended ? "the server ended the session" : o.error)
                          : std::string{};
    if (retryable) {
      worker_report r;
      r.retried = 1;
      pool.give_back(std::move(s), how, why, r);
      job.attempt = 1;
      continue;
    }
    out.kind = lease_outcome::answered;
    if (o.ok) {
      ++counts.ok;
      o.result.set_node_id(pool.node_id);
      out.result = std::move(o.result);
    } else {
      ++counts.failed;
      auto code = o.fatal ? errc::connection_failed : errc::query_failed;
      auto what = o.fatal ? "connection lost: " : "query failed: ";
      out.error = make_error(code, node_message(pool.node_id, what) + o.error, o.sqlstate);
    }
    pool.give_back(std::move(s), how, why, counts);
    return out;
  }
  return out;
}

} // namespace pgcm::detail
