#include "pgcm/actors/node_supervisor.hpp"

#include <algorithm>
#include <optional>
#include <random>
#include <vector>

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <caf/actor_system.hpp>
#include <caf/blocking_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "core_actor.hpp"
#include "health_tracker.hpp"
#include "lease.hpp"
#include "log.hpp"
#include "node_error.hpp"
#include "pgcm/actors/connection_worker.hpp"
#include "pgcm/actors/health_probe.hpp"
#include "pgcm/actors/stream_worker.hpp"
#include "pgcm/messages/error.hpp"
#include "pool_policy.hpp"
#include "pq_connection.hpp"
#include "reactor.hpp"
#include "tick_timer.hpp"

namespace pgcm {

namespace {

using namespace std::chrono;

constexpr std::int64_t stats_interval_ns = 250'000'000; // pool_stats events: 4/s at most
constexpr auto dns_ttl = seconds{30};

struct supervisor_data;
// A core actor: may run inline (src/core_actor.hpp, docs/threading.md I5).
using self_ptr = detail::core_pointer<node_supervisor_actor, supervisor_data>;

/// A caller of (query_atom, query_job) waiting for its answer, or a
/// transaction session's (pin_atom, query_job) waiting for a connection.
struct pending_query {
  caf::typed_response_promise<result_set> rp;
  query_job job;
  bool pin = false;
  caf::typed_response_promise<connection_worker_actor> pin_rp;
  caf::strong_actor_ptr session; // who asked for the pin

  void fail(caf::error err) {
    if (pin)
      pin_rp.deliver(std::move(err));
    else
      rp.deliver(std::move(err));
  }
  bool pending() const { return pin ? pin_rp.pending() : rp.pending(); }
};

/// Carries out the pool policy's decisions with the actor.
struct supervisor_shell {
  using request = pending_query;
  using handle = connection_worker_actor;
  using counters = worker_counters;

  self_ptr self = nullptr;

  handle spawn(std::uint32_t id, std::shared_ptr<worker_counters> counters);
  void send(const handle& worker, request&& rp);
  void reject(request&& rp, detail::pool_reject why);
  void arm(std::int64_t at_ns);
  void resolve();
  void connected(bool connected);
  void first_attempt_done();
  void stopped();
  void kill(const handle& worker);
  void connect_failed(const std::string& error, int attempt, std::int64_t next_in_ns);
};

using policy_type = detail::pool_policy<supervisor_shell>;

struct supervisor_data {
  static inline const char* name = "pgcm.core.node_supervisor"; // a name only (logs)
  std::string node_id;
  node_config cfg;
  manager_options opts;
  manager_actor manager;
  std::shared_ptr<detail::reactor> io;
  std::shared_ptr<const detail::conn_params> params;
  /// Idle connections for facade callers to lease (src/lease.hpp).
  std::shared_ptr<detail::lease_pool> leases;
  const caf::actor_control_block* lease_key = nullptr;

  supervisor_shell shell;
  std::optional<policy_type> pool; // set when the behavior starts

  detail::health_tracker health{3};
  health_probe_actor probe;

  pool_stats published;
  std::int64_t last_publish_ns = 0;
  bool stats_dirty = false;

  // DNS: host names are resolved on a detached thread, never in libpq.
  std::uint64_t dns_gen = 0;

  // start_atom: answered once the first connection attempt and probe finished.
  caf::typed_response_promise<ok_atom> start_rp;
  bool first_connect_done = false;
  bool first_probe_done = false;

  caf::typed_response_promise<ok_atom> stop_rp;

  /// Running row streams, each on a connection of its own (stream_worker);
  /// at most pool.max at once. They count as open connections with a
  /// request in flight in the pool stats.
  std::vector<stream_worker_actor> streams;
  /// Transactions: which session pinned which connection (monitored).
  std::vector<std::pair<caf::actor_addr, connection_worker_actor>> pinned_by;

  detail::tick_timer timer;
  /// The steady clock in ns (query_job::deadline_ns); tests use a fake one.
  detail::steady_clock_fn clock = &steady_now_ns;

  ~supervisor_data() {
    if (leases) {
      leases->close(steady_now_ns());
      detail::unregister_lease_pool(lease_key);
    }
    if (pool)
      pool->for_each_waiting([this](pending_query& q) {
        if (q.pending()) q.fail(detail::node_error(errc::shutting_down, node_id, "shutting down"));
      });
    if (start_rp.pending()) start_rp.deliver(ok_atom::value);
    if (stop_rp.pending()) stop_rp.deliver(ok_atom::value);
  }
};

// -- timers and events --------------------------------------------------------

void schedule(self_ptr self, std::int64_t at_ns) {
  self->state.timer.arm(self, tick_atom::value, at_ns, self->state.clock());
}

void publish(self_ptr self, node_event ev) {
  ev.node_id = self->state.node_id;
  self->send(self->state.manager, publish_atom::value, std::move(ev));
}

/// The pool's stats with the running streams counted in.
pool_stats current_stats(supervisor_data& st) {
  auto stats = st.pool->refreshed_stats();
  auto n = static_cast<std::int64_t>(st.streams.size());
  stats.total_connections += n;
  stats.in_flight_requests += n;
  if (st.leases) stats.waiting_requests += st.leases->waiting(); // callers waiting for a lease
  return stats;
}

/// Publishes pool_stats when they changed, at most every 250 ms.
void stats_changed(self_ptr self, bool force = false) {
  auto& st = self->state;
  const auto stats = current_stats(st);
  if (stats == st.published) return;
  auto now = st.clock();
  if (force || now - st.last_publish_ns >= stats_interval_ns) {
    st.published = stats;
    st.last_publish_ns = now;
    st.stats_dirty = false;
    node_event ev;
    ev.type = event::pool_stats;
    ev.stats = stats;
    publish(self, std::move(ev));
  } else if (!st.stats_dirty) {
    st.stats_dirty = true;
    schedule(self, st.last_publish_ns + stats_interval_ns);
  }
}

void maybe_finish_start(self_ptr self) {
  auto& st = self->state;
  if (st.start_rp.pending() && st.first_connect_done && st.first_probe_done)
    st.start_rp.deliver(ok_atom::value);
}

void resolve_host(self_ptr self);

caf::error down_error(const supervisor_data& st) {
  const auto& last = st.pool->last_error();
  return detail::node_error(errc::connection_failed, st.node_id, "connection failed",
                            last.empty() ? std::string_view{"node unreachable"} : last);
}

// -- the shell's actions --------------------------------------------------------

connection_worker_actor supervisor_shell::spawn(std::uint32_t id,
                                                std::shared_ptr<worker_counters> counters) {
  auto& st = self->state;
  worker_config wc;
  wc.node_id = st.node_id;
  wc.worker_id = id;
  wc.params = st.params;
  wc.io = st.io;
  wc.connect_timeout = st.opts.connect_timeout;
  wc.statement_cache = st.cfg.pool.statement_cache;
  wc.retry_to = self;
  wc.counters = std::move(counters);
  wc.leases = st.leases;
  wc.slot = std::make_shared<detail::lease_slot>();
  wc.counters->lease = wc.slot;
  auto handle = spawn_connection_worker(self->system(), self, std::move(wc));
  self->monitor(handle);
  // Linked too: a supervisor that dies abnormally takes its workers (and
  // their connections) with it before the manager starts a new one. Their
  // exits reach the exit handler, which ignores them (down messages count).
  self->link_to(handle);
  return handle;
}

void supervisor_shell::send(const connection_worker_actor& worker, pending_query&& q) {
  auto& st = self->state;
  for (auto& w : st.pool->workers())
    if (w.worker == worker) {
      // A pinned connection is never leased: it holds its session's
      // transaction until unpinned (the worker does not park it).
      if (q.pin) w.shared->pinned.store(true);
      if (auto slot = w.shared->lease.lock()) st.leases->reserve(*slot);
      break;
    }
  if (q.pin) {
    // Pinned: the session talks to the worker itself until it unpins it.
    // Should the session die without unpinning, its connection is closed
    // (it may hold an open transaction).
    if (q.session) {
      st.pinned_by.emplace_back(caf::actor_cast<caf::actor_addr>(q.session), worker);
      self->monitor(q.session);
    }
    q.pin_rp.deliver(worker);
    return;
  }
  q.rp.delegate(worker, execute_atom::value, std::move(q.job));
}

void supervisor_shell::reject(pending_query&& q, detail::pool_reject why) {
  auto& st = self->state;
  struct {
    pending_query& q;
    void deliver(caf::error err) { q.fail(std::move(err)); }
  } rp{q};
  using detail::pool_reject;
  switch (why) {
  case pool_reject::stopping:
    rp.deliver(detail::node_error(errc::shutting_down, st.node_id, "shutting down"));
    return;
  case pool_reject::stop_not_started:
    rp.deliver(
        detail::node_error(errc::shutting_down, st.node_id, "shutting down (request not started)"));
    return;
  case pool_reject::deadline_passed:
    rp.deliver(detail::node_error(errc::query_timeout, st.node_id,
                                  "query timeout (deadline of " + std::to_string(q.job.timeout_ms) +
                                      " ms passed)"));
    return;
  case pool_reject::waited_too_long:
    rp.deliver(detail::node_error(errc::query_timeout, st.node_id,
                                  "query timeout (deadline of " + std::to_string(q.job.timeout_ms) +
                                      " ms passed while waiting for a connection)"));
    return;
  case pool_reject::node_down:
    rp.deliver(down_error(st));
    return;
  case pool_reject::exhausted:
    rp.deliver(detail::node_error(errc::pool_exhausted, st.node_id,
                                  "pool exhausted (" + std::to_string(st.pool->waiting()) +
                                      " requests already waiting for a connection)"));
    return;
  }
}

void supervisor_shell::arm(std::int64_t at_ns) {
  schedule(self, at_ns);
}

void supervisor_shell::resolve() {
  resolve_host(self);
}

void supervisor_shell::connected(bool connected) {
  auto& st = self->state;
  node_event ev;
  ev.type = connected ? event::node_connected : event::node_disconnected;
  const auto& last = st.pool->last_error();
  auto last_msg = last.empty() ? std::string{} : detail::node_message(st.node_id, last);
  if (!connected && !last.empty())
    ev.error = error_info{errc::connection_failed, last_msg, std::nullopt};
  if (connected || st.pool->stopping())
    log::info("node {}: {}", st.node_id, connected ? "connected" : "disconnected (closed)");
  else
    log::warn("node {}: disconnected{}{}", st.node_id, last.empty() ? "" : ": ", last);
  publish(self, std::move(ev));
}

void supervisor_shell::first_attempt_done() {
  self->state.first_connect_done = true;
  maybe_finish_start(self);
}

void supervisor_shell::stopped() {
  auto& st = self->state;
  stats_changed(self, true);
  if (st.stop_rp.pending()) st.stop_rp.deliver(ok_atom::value);
  self->quit();
}

void supervisor_shell::kill(const connection_worker_actor& worker) {
  self->send_exit(worker, caf::exit_reason::kill);
}

void supervisor_shell::connect_failed(const std::string& error, int attempt,
                                      std::int64_t next_in_ns) {
  log::warn("{} (attempt {}, next in {} ms)",
            detail::node_message(self->state.node_id, "connection failed", error), attempt,
            next_in_ns / 1'000'000);
}

// -- events ---------------------------------------------------------------------

/// Adds a report's counts to the stats.
void add_counts(pool_stats& stats, const worker_report& r) {
  stats.queries_ok += r.ok;
  stats.queries_failed += r.failed;
  stats.queries_timed_out += r.timed_out;
  stats.queries_retried += r.retried;
  stats.query_duration_count += r.answers_timed;
  stats.query_duration_sum_us += r.answers_duration_us;
  std::int64_t at_most = 0; // the report's buckets are not cumulative, the stats' are
#define PGCM_X(name, bound_us)                                                                     \
  at_most += r.name;                                                                               \
  stats.name += at_most;
  PGCM_QUERY_DURATION_BUCKETS(PGCM_X)
#undef PGCM_X
}

/// Adds the counts of queries run on leased connections since the last look
/// (and `more` signs of a failover seen elsewhere). A write refused as
/// read-only or a session the server ended among them: if this node is the
/// primary, the manager probes every node now (issue 10).
void add_leased_counts(self_ptr self, std::int32_t more = 0) {
  auto& st = self->state;
  auto signs = more;
  if (st.leases) {
    auto r = st.leases->take_counts();
    add_counts(st.pool->stats(), r);
    signs += r.failover_signs;
  }
  if (signs > 0) self->send(st.manager, failover_atom::value, st.node_id);
}

/// Whether every connection the pool may have is open and ready: callers
/// finding none idle then wait in the lease pool for one to come back.
void update_full(supervisor_data& st) {
  if (!st.leases) return;
  int ready = 0;
  for (auto& w : st.pool->workers())
    if (w.state == detail::conn_state::ready) ++ready;
  bool full = !st.pool->stopping() && ready >= st.cfg.pool.max;
  if (full != st.leases->full.load()) st.leases->set_full(full);
}

void on_report(self_ptr self, const worker_report& r) {
  auto& st = self->state;
  auto& pool = *st.pool;
  add_counts(pool.stats(), r);
  add_leased_counts(self, r.failover_signs);
  if (!pool.knows(r.worker_id)) return;
  auto now = st.clock();
  switch (r.state) {
  case worker_state::ready:
    pool.on_ready(now, r.worker_id);
    break;
  case worker_state::retiring:
    pool.on_retiring(now, r.worker_id);
    break;
  case worker_state::closed:
  case worker_state::failed:
    // Stored without the node prefix (the worker's message has it).
    pool.on_gone(now, r.worker_id, r.state == worker_state::failed,
                 detail::strip_node_prefix(st.node_id, r.error));
    break;
  case worker_state::connecting:
    pool.on_answers(now, r.worker_id);
    break;
  }
  update_full(st);
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
  if (st.probe || st.pool->stopping() || !st.params) return;
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
  if (r.ok) {
    // A node in reconnect backoff answers again: healthy must mean it serves.
    st.pool->on_probe_ok(st.clock());
    auto pos = [](std::uint64_t v) { return v == 0 ? std::nullopt : std::optional<lsn>{lsn{v}}; };
    st.health.on_facts(r.timeline, r.system_identifier, pos(r.wal_lsn), pos(r.receive_lsn));
  }
  auto& h = st.health.status();
  if (changed)
    log::info("node {}: {} ({}){}{}", st.node_id, to_string(h.status), to_string(h.role),
              h.last_error ? ": " : "", h.last_error.value_or(""));
  if (changed && st.probe) {
    // Probe faster (or slower) while the node is unhealthy.
    auto interval = h.status == health_state::unhealthy ? st.opts.unhealthy_check_interval
                                                        : st.opts.health_check_interval;
    self->send(st.probe, probe_atom::value, caf::timespan{interval});
  }
  // Every probe goes to the manager: it keeps the cluster's replication view
  // (lag, conflicts) and publishes node_health / node_role.
  self->send(st.manager, probe_atom::value, st.node_id, probe_report{h, changed, r});
  if (!st.first_probe_done) {
    st.first_probe_done = true;
    maybe_finish_start(self);
  }
}

void on_tick(self_ptr self) {
  auto& st = self->state;
  auto now = st.clock();
  if (st.pool->stopping()) {
    st.pool->on_tick(now);
    return;
  }
  std::int64_t next = st.pool->on_tick(now);
  auto earliest = [&](std::int64_t t) {
    if (t > 0 && (next == 0 || t < next)) next = t;
  };
  if (st.stats_dirty) {
    st.stats_dirty = false;
    stats_changed(self);
  }
  if (st.stats_dirty) earliest(st.last_publish_ns + stats_interval_ns);
  schedule(self, next);
}

/// A query for the pool (from the manager, a node handle or a worker
/// handing it back): the pool policy dispatches it or queues it; the worker
/// that runs it answers the requester (the promise is delegated).
caf::result<result_set> take_query(self_ptr self, query_job&& job) {
  auto& st = self->state;
  auto rp = self->make_response_promise<result_set>();
  auto deadline = job.deadline_ns;
  bool exclusive = detail::opens_transaction(job.sql);
  st.pool->on_request(st.clock(), pending_query{rp, std::move(job), false, {}, {}}, deadline,
                      exclusive);
  stats_changed(self);
  return rp;
}

/// A row stream: on a connection opened for it (stream_worker.hpp).
caf::result<stream_control_actor> start_stream(self_ptr self, stream_job&& job) {
  auto& st = self->state;
  if (st.pool->stopping())
    return detail::node_error(errc::shutting_down, st.node_id, "shutting down");
  if (!st.params) // the host name is not resolved yet
    return down_error(st);
  auto limit = static_cast<std::size_t>(std::max(1, st.cfg.pool.max));
  if (st.streams.size() >= limit)
    return detail::node_error(errc::pool_exhausted, st.node_id,
                              "too many streams (" + std::to_string(st.streams.size()) +
                                  " running, at most pool.max = " + std::to_string(limit) + ")");
  stream_worker_config sc;
  sc.node_id = st.node_id;
  sc.params = st.params;
  sc.io = st.io;
  sc.connect_timeout = st.opts.connect_timeout;
  auto worker = spawn_stream_worker(self->system(), std::move(sc));
  self->monitor(worker);
  self->link_to(worker); // dies with an abnormally ending supervisor (its exit handler cancels)
  st.streams.push_back(worker);
  stats_changed(self);
  return self->delegate(worker, stream_atom::value, std::move(job));
}

void begin(self_ptr self) {
  start_probe(self);
  stats_changed(self, true);
}

node_supervisor_actor::behavior_type node_supervisor(self_ptr self, manager_actor manager,
                                                     std::string node_id, node_config cfg,
                                                     manager_options opts,
                                                     std::shared_ptr<detail::reactor> io,
                                                     detail::steady_clock_fn clock) {
  auto& st = self->state;
  st.clock = clock;
  st.node_id = std::move(node_id);
  st.cfg = std::move(cfg);
  st.opts = opts;
  st.manager = std::move(manager);
  st.io = std::move(io);
  st.health = detail::health_tracker{opts.unhealthy_threshold, opts.healthy_threshold};
  st.shell.self = self;
  detail::pool_limits limits;
  limits.min = st.cfg.pool.min;
  limits.max = st.cfg.pool.max;
  limits.pipeline_depth = st.cfg.pool.pipeline_depth;
  limits.max_waiting = st.cfg.pool.max_waiting;
  limits.backoff_initial = st.opts.reconnect_backoff_initial;
  limits.backoff_max = st.opts.reconnect_backoff_max;
  limits.dns_ttl = dns_ttl;
  st.pool.emplace(st.shell, limits, !is_literal_address(st.cfg.host), std::random_device{}());
  st.pool->stats().node_id = st.node_id;
  st.leases = std::make_shared<detail::lease_pool>();
  st.leases->node_id = st.node_id;
  st.leases->supervisor = caf::actor_cast<caf::weak_actor_ptr>(self);
  st.lease_key = self->ctrl();
  detail::register_lease_pool(st.lease_key, st.leases);
  self->set_exit_handler([](const caf::exit_msg&) {
    // Linked probe and worker exits are handled through down messages; never die of them.
  });
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& streams = self->state.streams;
    for (auto i = streams.begin(); i != streams.end(); ++i)
      if (i->address() == dm.source) {
        streams.erase(i);
        stats_changed(self);
        return;
      }
    auto& pool = *self->state.pool;
    auto& pins = self->state.pinned_by;
    for (auto it = pins.begin(); it != pins.end(); ++it)
      if (it->first == dm.source) {
        // A session ended without giving its connection back: whatever
        // transaction it left open must not reach the next user.
        auto worker = it->second;
        pins.erase(it);
        if (auto* w = pool.find_worker(worker)) {
          log::warn("node {}: transaction session ended without releasing connection {}; "
                    "closing it",
                    self->state.node_id, w->id);
          self->send(worker, drain_atom::value, caf::timespan{0});
        }
        return;
      }
    for (auto& w : pool.workers())
      if (w.worker.address() == dm.source) {
        pool.on_gone(self->state.clock(), w.id, true, "connection worker terminated unexpectedly");
        update_full(self->state);
        stats_changed(self);
        return;
      }
  });
  return {
      [=](query_atom, query_job& job) -> caf::result<result_set> {
        return take_query(self, std::move(job));
      },
      // The public node handle (node_api_actor): what the manager checks
      // before it delegates (query_atom, id, ...), checked here.
      [=](query_atom, std::string& sql, std::vector<param>& params,
          caf::timespan timeout) -> caf::result<result_set> {
        auto& st = self->state;
        if (auto problem = detail::transaction_statement_problem(sql); !problem.empty())
          return detail::node_error(errc::invalid_argument, st.node_id, problem);
        if (timeout.count() <= 0) timeout = st.opts.query_timeout;
        return take_query(self, make_query_job(std::move(sql), std::move(params), timeout));
      },
      [=](pin_atom, query_job& job) -> caf::result<connection_worker_actor> {
        auto& st = self->state;
        auto rp = self->make_response_promise<connection_worker_actor>();
        auto deadline = job.deadline_ns;
        pending_query q{{}, std::move(job), true, rp, self->current_sender()};
        st.pool->on_request(st.clock(), std::move(q), deadline, true, true);
        stats_changed(self);
        return rp;
      },
      [=](unpin_atom, const connection_worker_actor& worker) {
        auto& st = self->state;
        auto& pins = st.pinned_by;
        for (auto it = pins.begin(); it != pins.end(); ++it)
          if (it->second == worker) {
            self->demonitor(it->first);
            pins.erase(it);
            break;
          }
        if (auto* w = st.pool->find_worker(worker)) {
          w->shared->pinned.store(false); // may be leased again once idle
          st.pool->on_unpin(st.clock(), w->id);
        }
        stats_changed(self);
      },
      [=](start_atom) -> caf::result<ok_atom> {
        auto& st = self->state;
        st.start_rp = self->make_response_promise<ok_atom>();
        bool literal = is_literal_address(st.cfg.host);
        if (literal) build_params(st, {});
        st.pool->on_start(st.clock(), literal);
        begin(self);
        return st.start_rp;
      },
      [=](stop_atom, caf::timespan grace) -> caf::result<ok_atom> {
        auto& st = self->state;
        auto rp = self->make_response_promise<ok_atom>();
        if (st.pool->stopping()) {
          rp.deliver(ok_atom::value);
          return rp;
        }
        st.stop_rp = rp;
        // Nothing is leased any more; a lessee still running at the workers'
        // deadline cancels its statement and answers shutting_down.
        st.leases->close(steady_now_ns() + grace.count());
        // Half a second beyond the workers' own grace: they answer first.
        st.pool->on_stop(st.clock() + grace.count() + 500'000'000);
        if (st.probe) {
          self->unlink_from(st.probe);
          self->send_exit(st.probe, caf::exit_reason::user_shutdown);
          st.probe = nullptr;
        }
        for (auto& w : st.pool->workers())
          self->send(w.worker, drain_atom::value, grace);
        for (auto& s : st.streams) // may finish within the grace, then cancelled (shutting_down)
          self->send(s, drain_atom::value, grace);
        if (st.start_rp.pending()) st.start_rp.deliver(ok_atom::value);
        st.timer.reset();
        schedule(self, st.pool->stop_deadline_ns());
        st.pool->maybe_finish_stop();
        return rp;
      },
      [=](caf::get_atom) -> node_info {
        auto& st = self->state;
        add_leased_counts(self);
        return node_info{st.node_id, redacted(st.cfg), st.health.status(), current_stats(st)};
      },
      [=](report_atom, const worker_report& r) { on_report(self, r); },
      [=](lease_atom, std::int32_t, const std::string&) {
        // Queries ran on leased connections: count them; a connection came
        // back while requests wait here.
        auto& st = self->state;
        add_leased_counts(self);
        if (!st.pool->stopping()) st.pool->on_capacity(st.clock());
        stats_changed(self);
      },
      [=](probe_atom, const probe_result& r) { on_probe(self, r); },
      [=](probe_atom) {
        // Probe now (the manager saw signs of a failover).
        if (self->state.probe) self->send(self->state.probe, probe_atom::value);
      },
      [=](resolved_atom, std::uint64_t gen, const std::string& addr, const std::string& err) {
        auto& st = self->state;
        if (gen != st.dns_gen || st.pool->stopping()) return;
        auto now = st.clock();
        if (!err.empty()) {
          auto msg = detail::with_context("connection failed", err);
          st.pool->on_resolved(now, msg);
          if (!st.first_probe_done)
            on_probe(self, probe_result{false, node_role::unknown, 0,
                                        detail::node_message(st.node_id, msg)});
          stats_changed(self);
          return;
        }
        build_params(st, addr);
        st.pool->on_resolved(now, {});
        begin(self);
      },
      [=](tick_atom, std::uint64_t gen) {
        if (self->state.timer.fired(gen)) on_tick(self);
      },
      [=](stream_atom, stream_job& job) -> caf::result<stream_control_actor> {
        return start_stream(self, std::move(job));
      },
  };
}

} // namespace

node_supervisor_actor spawn_node_supervisor(caf::actor_system& sys, manager_actor manager,
                                            std::string node_id, node_config cfg,
                                            manager_options opts,
                                            std::shared_ptr<detail::reactor> io,
                                            detail::steady_clock_fn clock) {
  return sys.spawn(node_supervisor, std::move(manager), std::move(node_id), std::move(cfg), opts,
                   std::move(io), clock);
}

} // namespace pgcm
