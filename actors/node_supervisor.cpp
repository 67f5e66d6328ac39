#include "pgcm/actors/node_supervisor.hpp"

#include <algorithm>
#include <deque>
#include <random>
#include <vector>

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <caf/actor_system.hpp>
#include <caf/blocking_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "health_tracker.hpp"
#include "log.hpp"
#include "pgcm/actors/connection_worker.hpp"
#include "pgcm/actors/health_probe.hpp"
#include "pgcm/messages/error.hpp"
#include "pq_connection.hpp"
#include "reactor.hpp"

namespace pgcm {

namespace {

using namespace std::chrono;

constexpr std::int64_t stats_interval_ns = 250'000'000; // pool_stats events: 4/s at most
constexpr std::int64_t dns_ttl_ns = 30'000'000'000;

std::int64_t to_ns(milliseconds d) {
  return duration_cast<nanoseconds>(d).count();
}

struct slot {
  connection_worker_actor handle;
  std::uint32_t id = 0;
  worker_state state = worker_state::connecting;
  std::int64_t sent = 0; // requests routed to it; minus counters->answered = in flight
  std::shared_ptr<worker_counters> counters;
  bool exclusive = false; // runs a statement that may open a transaction

  int in_flight() const {
    return static_cast<int>(std::max<std::int64_t>(0, sent - counters->answered.load()));
  }
};

struct waiting_request {
  caf::typed_response_promise<result_set> rp;
  query_job job;
  bool exclusive = false;
};

struct supervisor_data {
  static inline const char* name = "pgcm.core.node_supervisor"; // see src/inline_unit.hpp
  std::string node_id;
  node_config cfg;
  manager_options opts;
  manager_actor manager;
  std::shared_ptr<detail::reactor> io;
  std::shared_ptr<const detail::conn_params> params;

  std::vector<slot> workers;
  std::uint32_t next_worker_id = 1;
  std::deque<waiting_request> waiting;

  detail::health_tracker health{3};
  health_probe_actor probe;

  pool_stats stats;
  pool_stats published;
  std::int64_t last_publish_ns = 0;
  bool stats_dirty = false;

  bool connected = false;
  std::string last_error;
  int failures_in_row = 0;
  std::int64_t next_attempt_ns = 0;

  // DNS: host names are resolved on a detached thread, never in libpq.
  bool needs_dns = false;
  bool resolving = false;
  std::int64_t resolved_at_ns = 0;
  std::uint64_t dns_gen = 0;

  // start_atom: answered once the first connection attempt and probe finished.
  caf::typed_response_promise<ok_atom> start_rp;
  bool first_connect_done = false;
  bool first_probe_done = false;

  bool stopping = false;
  caf::typed_response_promise<ok_atom> stop_rp;
  std::int64_t stop_deadline_ns = 0;

  std::uint64_t timer_gen = 0;
  std::int64_t timer_at_ns = 0;
  std::minstd_rand rng{std::random_device{}()};

  ~supervisor_data() {
    for (auto& w : waiting)
      if (w.rp.pending())
        w.rp.deliver(make_error(errc::shutting_down, "node " + node_id + ": shutting down"));
    if (start_rp.pending()) start_rp.deliver(ok_atom::value);
    if (stop_rp.pending()) stop_rp.deliver(ok_atom::value);
  }
};

using self_ptr = node_supervisor_actor::stateful_pointer<supervisor_data>;

std::string node_prefix(const supervisor_data& st) {
  return "node " + st.node_id;
}

// -- timers and events --------------------------------------------------------

void schedule(self_ptr self, std::int64_t at_ns) {
  auto& st = self->state;
  if (at_ns <= 0 || (st.timer_at_ns != 0 && st.timer_at_ns <= at_ns)) return;
  st.timer_at_ns = at_ns;
  auto delay = std::max<std::int64_t>(0, at_ns - steady_now_ns());
  self->delayed_send(self, nanoseconds{delay}, tick_atom::value, ++st.timer_gen);
}

void publish(self_ptr self, node_event ev) {
  ev.node_id = self->state.node_id;
  self->send(self->state.manager, publish_atom::value, std::move(ev));
}

void refresh_gauges(supervisor_data& st) {
  st.stats.total_connections = static_cast<std::int64_t>(st.workers.size());
  st.stats.idle_connections = 0;
  st.stats.in_flight_requests = 0;
  for (auto& w : st.workers) {
    auto n = w.in_flight();
    if (w.state == worker_state::ready && n == 0) ++st.stats.idle_connections;
    st.stats.in_flight_requests += n;
  }
  st.stats.waiting_requests = static_cast<std::int64_t>(st.waiting.size());
}

/// Publishes pool_stats when they changed, at most every 250 ms.
void stats_changed(self_ptr self, bool force = false) {
  auto& st = self->state;
  refresh_gauges(st);
  if (st.stats == st.published) return;
  auto now = steady_now_ns();
  if (force || now - st.last_publish_ns >= stats_interval_ns) {
    st.published = st.stats;
    st.last_publish_ns = now;
    st.stats_dirty = false;
    node_event ev;
    ev.type = event::pool_stats;
    ev.stats = st.stats;
    publish(self, std::move(ev));
  } else if (!st.stats_dirty) {
    st.stats_dirty = true;
    schedule(self, st.last_publish_ns + stats_interval_ns);
  }
}

void set_connected(self_ptr self, bool connected) {
  auto& st = self->state;
  if (st.connected == connected) return;
  st.connected = connected;
  node_event ev;
  ev.type = connected ? event::node_connected : event::node_disconnected;
  if (!connected && !st.last_error.empty())
    ev.error = error_info{errc::connection_failed, st.last_error, std::nullopt};
  if (connected || st.stopping)
    log::info("{}: {}", node_prefix(st), connected ? "connected" : "disconnected (closed)");
  else
    log::warn("{}: disconnected{}{}", node_prefix(st), st.last_error.empty() ? "" : ": ",
              st.last_error);
  publish(self, std::move(ev));
}

void maybe_finish_start(self_ptr self) {
  auto& st = self->state;
  if (st.start_rp.pending() && st.first_connect_done && st.first_probe_done)
    st.start_rp.deliver(ok_atom::value);
}

// -- pool ---------------------------------------------------------------------

int count(const supervisor_data& st, worker_state s) {
  return static_cast<int>(std::count_if(st.workers.begin(), st.workers.end(),
                                        [s](const slot& w) { return w.state == s; }));
}

slot* find(supervisor_data& st, std::uint32_t id) {
  for (auto& w : st.workers)
    if (w.id == id) return &w;
  return nullptr;
}

void resolve_host(self_ptr self);
void drain_queue(self_ptr self);
void want_reports(self_ptr self);

void spawn_worker(self_ptr self) {
  auto& st = self->state;
  worker_config wc;
  wc.node_id = st.node_id;
  wc.worker_id = st.next_worker_id++;
  wc.params = st.params;
  wc.io = st.io;
  wc.connect_timeout = st.opts.connect_timeout;
  wc.statement_cache = st.cfg.pool.statement_cache;
  wc.retry_to = self;
  wc.counters = std::make_shared<worker_counters>();
  wc.counters->report_answers = !st.waiting.empty();
  auto counters = wc.counters;
  auto handle = spawn_connection_worker(self->system(), self, std::move(wc));
  self->monitor(handle);
  st.workers.push_back(
      slot{handle, st.next_worker_id - 1, worker_state::connecting, 0, std::move(counters), false});
}

/// Whether a new connection may be opened now. After a failed attempt, only
/// one attempt at a time and only once the backoff step has passed, whatever
/// asks for it (replenishing, growth under load): a node that is down costs
/// one attempt per backoff step, not one per pool slot or request.
bool may_attempt(self_ptr self) {
  auto& st = self->state;
  if (st.failures_in_row == 0) return true;
  if (count(st, worker_state::connecting) > 0) return false;
  if (steady_now_ns() < st.next_attempt_ns) {
    schedule(self, st.next_attempt_ns);
    return false;
  }
  return true;
}

/// Opens connections up to `pool.min`. With no open connection (after the
/// first start), one attempt at a time, spaced by the backoff.
void replenish(self_ptr self) {
  auto& st = self->state;
  if (st.stopping || st.resolving) return;
  if (st.needs_dns && (!st.params || (st.failures_in_row > 0 &&
                                      steady_now_ns() - st.resolved_at_ns > dns_ttl_ns))) {
    if (steady_now_ns() >= st.next_attempt_ns)
      resolve_host(self);
    else
      schedule(self, st.next_attempt_ns);
    return;
  }
  int live = static_cast<int>(st.workers.size());
  if (live >= st.cfg.pool.min) return;
  // At the first start, before any attempt failed, the whole pool.min is
  // opened at once (as fast as opening them in parallel by hand); from the
  // first failure on, a node without an open connection gets one attempt at
  // a time.
  bool first_start = !st.first_connect_done && st.failures_in_row == 0;
  if (count(st, worker_state::ready) == 0 && !first_start) {
    if (count(st, worker_state::connecting) > 0 || !may_attempt(self)) return;
    spawn_worker(self);
    return;
  }
  for (; live < st.cfg.pool.min && may_attempt(self); ++live)
    spawn_worker(self);
}

void send_to(slot& w, caf::typed_response_promise<result_set>& rp, query_job&& job,
             bool exclusive) {
  ++w.sent;
  w.exclusive = exclusive;
  rp.delegate(w.handle, execute_atom::value, std::move(job));
}

/// The best ready worker for a request, or null.
slot* pick(supervisor_data& st, bool exclusive) {
  slot* best = nullptr;
  int best_load = 0;
  for (auto& w : st.workers) {
    if (w.state != worker_state::ready) continue;
    auto load = w.in_flight();
    if (w.exclusive) {
      if (load != 0) continue;
      w.exclusive = false; // its statement was answered
    }
    if (exclusive ? load != 0 : load >= st.cfg.pool.pipeline_depth) continue;
    if (best == nullptr || load < best_load) {
      best = &w;
      best_load = load;
    }
    if (load == 0) break;
  }
  return best;
}

/// Whether the node is known to be down right now: nothing open, nothing
/// connecting, and waiting for the next backoff step.
bool known_down(const supervisor_data& st) {
  return st.failures_in_row > 0 && count(st, worker_state::ready) == 0 &&
         count(st, worker_state::connecting) == 0 && !st.resolving;
}

caf::error down_error(const supervisor_data& st) {
  return make_error(errc::connection_failed,
                    node_prefix(st) + ": connection failed: " +
                        (st.last_error.empty() ? std::string{"node unreachable"} : st.last_error));
}

void grow(self_ptr self) {
  auto& st = self->state;
  if (st.stopping || st.resolving || !st.params) return;
  if (static_cast<int>(st.workers.size()) >= st.cfg.pool.max) return;
  if (count(st, worker_state::ready) == 0) {
    replenish(self); // down or not yet up: one attempt at a time
    return;
  }
  // Do not open more connections than there are requests to use them.
  int connecting = count(st, worker_state::connecting);
  if (connecting > static_cast<int>(st.waiting.size()) || !may_attempt(self)) return;
  spawn_worker(self);
}

/// Routes one request: an idle connection, else a new connection plus
/// pipelining on the least-loaded one, else the wait queue.
void dispatch(self_ptr self, caf::typed_response_promise<result_set> rp, query_job&& job,
              bool exclusive, bool from_queue = false) {
  auto& st = self->state;
  if (slot* w = pick(st, exclusive)) {
    if (w->in_flight() > 0) grow(self);
    // grow() may have reallocated the vector: pick again.
    w = pick(st, exclusive);
    send_to(*w, rp, std::move(job), exclusive);
    return;
  }
  if (known_down(st)) {
    ++st.stats.queries_failed;
    rp.deliver(down_error(st));
    return;
  }
  if (!from_queue && static_cast<int>(st.waiting.size()) >= st.cfg.pool.max_waiting) {
    ++st.stats.requests_rejected;
    rp.deliver(make_error(errc::pool_exhausted, node_prefix(st) + ": pool exhausted (" +
                                                    std::to_string(st.waiting.size()) +
                                                    " requests already waiting for a connection)"));
    return;
  }
  auto deadline = job.deadline_ns;
  if (from_queue)
    st.waiting.push_front(waiting_request{std::move(rp), std::move(job), exclusive});
  else
    st.waiting.push_back(waiting_request{std::move(rp), std::move(job), exclusive});
  grow(self);
  schedule(self, deadline);
  if (!from_queue) want_reports(self);
}

/// While requests wait, workers report every answer (the supervisor must
/// hear of freed capacity); otherwise they need not.
void want_reports(self_ptr self) {
  auto& st = self->state;
  bool want = !st.waiting.empty();
  bool raised = false;
  for (auto& w : st.workers) {
    if (w.counters->report_answers.load() != want) {
      w.counters->report_answers.store(want);
      raised |= want;
    }
  }
  // A worker may have answered between the check that queued the request
  // and the flag going up, without a report: look again now.
  if (raised) drain_queue(self);
}

/// Hands queued requests to connections that can take them, in order.
void drain_queue(self_ptr self) {
  auto& st = self->state;
  while (!st.waiting.empty()) {
    auto& front = st.waiting.front();
    if (pick(st, front.exclusive) == nullptr && !known_down(st)) return;
    auto w = std::move(front);
    st.waiting.pop_front();
    if (known_down(st)) {
      ++st.stats.queries_failed;
      w.rp.deliver(down_error(st));
      continue;
    }
    dispatch(self, std::move(w.rp), std::move(w.job), w.exclusive, true);
  }
  if (st.waiting.empty()) want_reports(self);
}

void fail_waiting(self_ptr self, const caf::error& err) {
  auto& st = self->state;
  for (auto& w : st.waiting) {
    ++st.stats.queries_failed;
    w.rp.deliver(err);
  }
  st.waiting.clear();
}

void maybe_finish_stop(self_ptr self) {
  auto& st = self->state;
  if (!st.stopping || !st.workers.empty()) return;
  set_connected(self, false);
  stats_changed(self, true);
  if (st.stop_rp.pending()) st.stop_rp.deliver(ok_atom::value);
  self->quit();
}

/// Counts a failed connection attempt and sets the next one after an
/// exponential backoff with jitter.
void note_connect_failure(self_ptr self, const std::string& error) {
  auto& st = self->state;
  ++st.stats.connect_failures;
  ++st.failures_in_row;
  st.last_error = error;
  auto base = to_ns(st.opts.reconnect_backoff_initial);
  auto cap = to_ns(st.opts.reconnect_backoff_max);
  auto backoff = base;
  for (int i = 1; i < st.failures_in_row && backoff < cap; ++i)
    backoff *= 2;
  backoff = std::min(backoff, cap);
  // Jitter: somewhere in [backoff/2, backoff], so that nodes and pools that
  // failed together do not retry in lock step.
  std::uniform_int_distribution<std::int64_t> jitter{backoff / 2, backoff};
  st.next_attempt_ns = steady_now_ns() + jitter(st.rng);
  log::warn("{} (attempt {}, next in {} ms)", error, st.failures_in_row,
            (st.next_attempt_ns - steady_now_ns()) / 1'000'000);
  if (!st.first_connect_done) {
    st.first_connect_done = true;
    maybe_finish_start(self);
  }
}

void on_worker_gone(self_ptr self, std::uint32_t id, bool failed, const std::string& error) {
  auto& st = self->state;
  auto it = std::find_if(st.workers.begin(), st.workers.end(),
                         [id](const slot& w) { return w.id == id; });
  if (it == st.workers.end()) return;
  bool was_connecting = it->state == worker_state::connecting;
  st.workers.erase(it);
  if (st.stopping) {
    maybe_finish_stop(self);
    return;
  }
  if (was_connecting && failed) {
    note_connect_failure(self, error);
  } else {
    ++st.stats.connections_discarded;
    if (failed) st.last_error = error;
  }
  if (count(st, worker_state::ready) == 0) {
    set_connected(self, false);
    if (known_down(st)) fail_waiting(self, down_error(st));
  }
  replenish(self);
  drain_queue(self);
  stats_changed(self);
}

void on_report(self_ptr self, const worker_report& r) {
  auto& st = self->state;
  st.stats.queries_ok += r.ok;
  st.stats.queries_failed += r.failed;
  st.stats.queries_timed_out += r.timed_out;
  st.stats.queries_retried += r.retried;
  st.stats.query_duration_count += r.answers_timed;
  st.stats.query_duration_sum_us += r.answers_duration_us;
  std::int64_t at_most = 0; // the report's buckets are not cumulative, the stats' are
#define PGCM_X(name, bound_us)                                                                     \
  at_most += r.name;                                                                               \
  st.stats.name += at_most;
  PGCM_QUERY_DURATION_BUCKETS(PGCM_X)
#undef PGCM_X
  slot* w = find(st, r.worker_id);
  if (w == nullptr) return;
  switch (r.state) {
  case worker_state::ready:
    if (w->state == worker_state::connecting) {
      w->state = worker_state::ready;
      ++st.stats.connections_opened;
      st.failures_in_row = 0;
      st.next_attempt_ns = 0;
      set_connected(self, true);
      if (!st.first_connect_done) {
        st.first_connect_done = true;
        maybe_finish_start(self);
      }
      replenish(self);
    }
    break;
  case worker_state::retiring:
    w->state = worker_state::retiring;
    break;
  case worker_state::closed:
  case worker_state::failed:
    on_worker_gone(self, r.worker_id, r.state == worker_state::failed, r.error);
    return;
  case worker_state::connecting:
    break;
  }
  drain_queue(self);
  stats_changed(self);
}

// -- DNS ----------------------------------------------------------------------

bool is_literal_address(const std::string& host) {
  if (host.empty() || host.front() == '/' || host.front() == '@')
    return true; // Unix socket directory or abstract namespace
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

void build_params(supervisor_data& st, const std::string& hostaddr) {
  st.params = std::make_shared<const detail::conn_params>(
      detail::conn_params::from(st.cfg, hostaddr, st.opts.connect_timeout));
}

void resolve_host(self_ptr self) {
  auto& st = self->state;
  st.resolving = true;
  auto gen = ++st.dns_gen;
  auto host = st.cfg.host;
  node_supervisor_actor me = self;
  // getaddrinfo blocks: run it on a thread of its own.
  self->system().spawn<caf::detached>([me, gen, host](caf::blocking_actor*) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
    std::string addr;
    std::string err;
    if (rc != 0 || res == nullptr) {
      err = "could not resolve host \"" + host + "\": " + gai_strerror(rc);
    } else {
      char buf[INET6_ADDRSTRLEN] = {0};
      if (res->ai_family == AF_INET)
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr, buf,
                  sizeof(buf));
      else
        inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(res->ai_addr)->sin6_addr, buf,
                  sizeof(buf));
      addr = buf;
    }
    if (res != nullptr) freeaddrinfo(res);
    caf::anon_send(me, resolved_atom::value, gen, addr, err);
  });
}

void start_probe(self_ptr self) {
  auto& st = self->state;
  if (st.probe || st.stopping || !st.params) return;
  probe_config pc;
  pc.node_id = st.node_id;
  pc.params = st.params;
  pc.io = st.io;
  pc.interval = st.opts.health_check_interval;
  pc.timeout = st.opts.effective_health_check_timeout();
  st.probe = spawn_health_probe(self->system(), self, std::move(pc));
  self->link_to(st.probe);
}

void on_probe(self_ptr self, const probe_result& r) {
  auto& st = self->state;
  auto now = system_clock::now();
  bool changed = r.ok ? st.health.on_success(microseconds{r.latency_us}, r.role, now)
                      : st.health.on_failure(r.error, now);
  if (changed) {
    auto& h = st.health.status();
    log::info("{}: {} ({}){}{}", node_prefix(st), to_string(h.status), to_string(h.role),
              h.last_error ? ": " : "", h.last_error.value_or(""));
    node_event ev;
    ev.type = event::node_health;
    ev.health = h;
    publish(self, std::move(ev));
  }
  if (!st.first_probe_done) {
    st.first_probe_done = true;
    maybe_finish_start(self);
  }
}

void on_tick(self_ptr self) {
  auto& st = self->state;
  st.timer_at_ns = 0;
  auto now = steady_now_ns();
  if (st.stopping) {
    if (now >= st.stop_deadline_ns) {
      // Grace period over and workers still there: kill them; their
      // destructors answer what they hold.
      for (auto& w : st.workers)
        self->send_exit(w.handle, caf::exit_reason::kill);
      st.workers.clear();
      maybe_finish_stop(self);
      return;
    }
    schedule(self, st.stop_deadline_ns);
    return;
  }
  std::int64_t next = 0;
  auto earliest = [&](std::int64_t t) {
    if (t > 0 && (next == 0 || t < next)) next = t;
  };
  for (auto it = st.waiting.begin(); it != st.waiting.end();) {
    if (it->job.deadline_ns <= now) {
      ++st.stats.queries_timed_out;
      it->rp.deliver(
          make_error(errc::query_timeout, node_prefix(st) + ": query timeout (deadline of " +
                                              std::to_string(it->job.timeout_ms) +
                                              " ms passed while waiting for a connection)"));
      it = st.waiting.erase(it);
    } else {
      earliest(it->job.deadline_ns);
      ++it;
    }
  }
  if (st.next_attempt_ns != 0 && now >= st.next_attempt_ns)
    replenish(self);
  else
    earliest(st.next_attempt_ns);
  if (st.stats_dirty) {
    st.stats_dirty = false;
    stats_changed(self);
  }
  if (st.stats_dirty) earliest(st.last_publish_ns + stats_interval_ns);
  schedule(self, next);
}

void begin(self_ptr self) {
  replenish(self);
  start_probe(self);
  stats_changed(self, true);
}

node_supervisor_actor::behavior_type node_supervisor(self_ptr self, manager_actor manager,
                                                     std::string node_id, node_config cfg,
                                                     manager_options opts,
                                                     std::shared_ptr<detail::reactor> io) {
  auto& st = self->state;
  st.node_id = std::move(node_id);
  st.cfg = std::move(cfg);
  st.opts = opts;
  st.manager = std::move(manager);
  st.io = std::move(io);
  st.health = detail::health_tracker{opts.unhealthy_threshold};
  st.stats.node_id = st.node_id;
  st.needs_dns = !is_literal_address(st.cfg.host);
  self->set_exit_handler([](const caf::exit_msg&) {
    // Linked probe exits are handled through down messages; never die of them.
  });
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& st = self->state;
    for (auto& w : st.workers)
      if (w.handle.address() == dm.source) {
        on_worker_gone(self, w.id, true, "connection worker terminated unexpectedly");
        return;
      }
  });
  return {
      [=](query_atom, query_job& job) -> caf::result<result_set> {
        auto& st = self->state;
        auto rp = self->make_response_promise<result_set>();
        if (st.stopping) {
          rp.deliver(make_error(errc::shutting_down, node_prefix(st) + ": shutting down"));
          return rp;
        }
        if (job.deadline_ns <= steady_now_ns()) {
          ++st.stats.queries_timed_out;
          rp.deliver(
              make_error(errc::query_timeout, node_prefix(st) + ": query timeout (deadline of " +
                                                  std::to_string(job.timeout_ms) + " ms passed)"));
          return rp;
        }
        bool exclusive = detail::opens_transaction(job.sql);
        dispatch(self, rp, std::move(job), exclusive);
        stats_changed(self);
        return rp;
      },
      [=](start_atom) -> caf::result<ok_atom> {
        auto& st = self->state;
        st.start_rp = self->make_response_promise<ok_atom>();
        if (!st.needs_dns) build_params(st, {});
        begin(self);
        return st.start_rp;
      },
      [=](stop_atom, caf::timespan grace) -> caf::result<ok_atom> {
        auto& st = self->state;
        auto rp = self->make_response_promise<ok_atom>();
        if (st.stopping) {
          rp.deliver(ok_atom::value);
          return rp;
        }
        st.stopping = true;
        st.stop_rp = rp;
        // Half a second beyond the workers' own grace: they answer first.
        st.stop_deadline_ns = steady_now_ns() + grace.count() + 500'000'000;
        fail_waiting(self, make_error(errc::shutting_down,
                                      node_prefix(st) + ": shutting down (request not started)"));
        if (st.probe) {
          self->unlink_from(st.probe);
          self->send_exit(st.probe, caf::exit_reason::user_shutdown);
          st.probe = nullptr;
        }
        for (auto& w : st.workers)
          self->send(w.handle, drain_atom::value, grace);
        if (st.start_rp.pending()) st.start_rp.deliver(ok_atom::value);
        st.timer_at_ns = 0;
        schedule(self, st.stop_deadline_ns);
        maybe_finish_stop(self);
        return rp;
      },
      [=](caf::get_atom) -> node_info {
        auto& st = self->state;
        refresh_gauges(st);
        return node_info{st.node_id, redacted(st.cfg), st.health.status(), st.stats};
      },
      [=](report_atom, const worker_report& r) { on_report(self, r); },
      [=](probe_atom, const probe_result& r) { on_probe(self, r); },
      [=](resolved_atom, std::uint64_t gen, const std::string& addr, const std::string& err) {
        auto& st = self->state;
        if (gen != st.dns_gen || st.stopping) return;
        st.resolving = false;
        if (!err.empty()) {
          st.resolved_at_ns = 0; // resolve again at the next attempt
          auto msg = node_prefix(st) + ": connection failed: " + err;
          note_connect_failure(self, msg);
          if (!st.first_probe_done) on_probe(self, probe_result{false, node_role::unknown, 0, msg});
          if (known_down(st)) fail_waiting(self, down_error(st));
          replenish(self);
          stats_changed(self);
          return;
        }
        st.resolved_at_ns = steady_now_ns();
        build_params(st, addr);
        begin(self);
      },
      [=](tick_atom, std::uint64_t gen) {
        if (gen == self->state.timer_gen) on_tick(self);
      },
  };
}

} // namespace

node_supervisor_actor spawn_node_supervisor(caf::actor_system& sys, manager_actor manager,
                                            std::string node_id, node_config cfg,
                                            manager_options opts,
                                            std::shared_ptr<detail::reactor> io) {
  return sys.spawn(node_supervisor, std::move(manager), std::move(node_id), std::move(cfg), opts,
                   std::move(io));
}

} // namespace pgcm
