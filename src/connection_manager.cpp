#include "pgcm/connection_manager.hpp"
#include "pgcm/scheduler.hpp"

#include <atomic>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include <caf/actor_clock.hpp>
#include <caf/actor_registry.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/logger.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "assert.hpp"
#include "inline_unit.hpp"
#include "lease.hpp"
#include "log.hpp"
#include "node_error.hpp"
#include "pgcm/actors/cluster_manager.hpp"
#include "pgcm/actors/connection_worker.hpp"
#include "pgcm/actors/remote_link.hpp"
#include "pgcm/messages/error.hpp"
#include "pq_connection.hpp"
#include "routing_snapshot.hpp"
#include "socket_lend.hpp"

namespace pgcm {

using std::chrono::seconds;

namespace detail {

struct subscription_entry {
  std::optional<event> type; // nullopt: every event
  std::function<void(const node_event&)> callback;
  std::mutex running; // held while the callback runs
  std::atomic<bool> active{true};
};

/// Everything behind the facade. Shared with subscriptions so that a
/// subscription outliving its manager stays harmless.
struct facade_impl {
  manager_options opts;
  std::unique_ptr<caf::actor_system_config> own_cfg;
  std::unique_ptr<caf::actor_system> own_sys;
  caf::actor_system* sys = nullptr;
  event_subscriber_actor dispatcher;

  /// Set once before any call: whether the manager is a remote one.
  bool is_remote = false;
  /// Set once before any call: whether a call runs core actors on its own
  /// thread and may take a socket lend (manager_options::inline_execution).
  bool run_inline = false;

  // The manager: local, or a link to a remote one (replaced on reconnect).
  // manager_mtx guards the four fields below and is never held while
  // waiting on anything; reconnect_mtx lets one caller at a time reconnect
  // a broken link (up to connect_timeout) without holding manager_mtx.
  mutable std::mutex manager_mtx;
  manager_api_actor manager;
  std::optional<remote_endpoint> remote;
  bool link_broken = false;
  bool closed = false; // shutdown() ran: no reconnect any more
  std::mutex reconnect_mtx;

  [[noreturn]] static void throw_closed() {
    throw error{errc::shutting_down, "connection manager is shut down"};
  }

  manager_api_actor current_manager() {
    {
      std::lock_guard<std::mutex> guard{manager_mtx};
      if (closed && is_remote) throw_closed();
      if (!link_broken) return manager;
    }
    std::lock_guard<std::mutex> one_at_a_time{reconnect_mtx};
    remote_endpoint where;
    {
      std::lock_guard<std::mutex> guard{manager_mtx};
      if (closed) throw_closed();
      if (!link_broken) return manager; // another caller reconnected meanwhile
      where = *remote;
    }
    auto link = connect_manager(*sys, where); // blocks; manager_mtx is free
    if (!link) throw error{to_error_info(link.error())};
    manager_api_actor dead;
    {
      std::lock_guard<std::mutex> guard{manager_mtx};
      if (closed) {
        caf::anon_send_exit(*link, caf::exit_reason::user_shutdown);
        throw_closed();
      }
      dead = std::exchange(manager, *link);
      link_broken = false;
    }
    caf::anon_send_exit(dead, caf::exit_reason::user_shutdown);
    caf::anon_send(*link, subscribe_atom::value, dispatcher);
    return *link;
  }

  void note_failure(const manager_api_actor& used, const error_info& info) {
    if (!is_remote || info.code != errc::remote_disconnected) return;
    std::lock_guard<std::mutex> guard{manager_mtx};
    if (used == manager && !closed) link_broken = true;
  }
  /// The dispatcher's own thread (set by it when it starts).
  std::atomic<std::thread::id> dispatcher_thread{};

  // Local managers only: each node's supervisor, learned from the manager on
  // first use, so that query() skips the manager hop.
  std::mutex routes_mtx;
  struct route_entry {
    node_query_actor sup;
    /// The node's idle connections, leased by a caller (null: inline
    /// execution off, or none found).
    std::shared_ptr<lease_pool> leases;
  };
  std::unordered_map<std::string, route_entry> routes;
  bool routes_closed = false; // after shutdown()

  // Local managers only: the manager's routing snapshot, so that a routed
  // query resolves its node here and takes the per-node path (no manager hop).
  std::shared_ptr<routing_board> board;

  // Blocking actors for request_blocking, reused: creating and destroying a
  // scoped_actor per call costs a trip to CAF's clock thread (an actor's
  // end cancels its timeouts there) besides the allocation. Each comes with
  // the socket_lend its caller offers to connection workers.
  struct asker {
    explicit asker(caf::actor_system& sys) : self(sys), lend(std::make_shared<socket_lend>()) {
      lend->asker = self->ctrl();
    }
    caf::scoped_actor self;
    std::shared_ptr<socket_lend> lend;
  };
  std::mutex askers_mtx;
  std::vector<std::unique_ptr<asker>> askers;
  bool askers_closed = false;

  std::unique_ptr<asker> lease_asker() {
    {
      std::lock_guard<std::mutex> guard{askers_mtx};
      if (!askers.empty()) {
        auto out = std::move(askers.back());
        askers.pop_back();
        return out;
      }
    }
    return std::make_unique<asker>(*sys);
  }

  /// Takes it back, unless the pool is closed or the actor may still get a
  /// late reply (then it is destroyed).
  void return_asker(std::unique_ptr<asker> x, bool clean) {
    if (clean) {
      std::lock_guard<std::mutex> guard{askers_mtx};
      if (!askers_closed) {
        askers.push_back(std::move(x));
        return;
      }
    }
    x.reset();
  }

  /// Before the actor system goes: no blocking actor may outlive it.
  void close_askers() {
    std::vector<std::unique_ptr<asker>> doomed;
    {
      std::lock_guard<std::mutex> guard{askers_mtx};
      askers_closed = true;
      doomed.swap(askers);
    }
  }

  void forget_route(const std::string& id) {
    std::lock_guard<std::mutex> guard{routes_mtx};
    routes.erase(id);
  }

  void close_routes() {
    std::lock_guard<std::mutex> guard{routes_mtx};
    routes.clear();
    routes_closed = true;
  }

  std::mutex subs_mtx;
  std::vector<std::shared_ptr<subscription_entry>> subs;

  std::once_flag shutdown_once;

  void dispatch(const node_event& ev) {
    std::vector<std::shared_ptr<subscription_entry>> snapshot;
    {
      std::lock_guard<std::mutex> guard{subs_mtx};
      snapshot = subs;
    }
    for (auto& e : snapshot) {
      if (e->type && *e->type != ev.type) continue;
      std::lock_guard<std::mutex> guard{e->running};
      if (!e->active) continue;
      try {
        e->callback(ev);
      } catch (const std::exception& ex) {
        log::error("event callback for {} threw: {}", to_string(ev.type), ex.what());
      } catch (...) {
        log::error("event callback for {} threw a non-standard exception", to_string(ev.type));
      }
    }
  }

  void remove(const std::shared_ptr<subscription_entry>& e) {
    {
      std::lock_guard<std::mutex> guard{subs_mtx};
      subs.erase(std::remove(subs.begin(), subs.end(), e), subs.end());
    }
    if (std::this_thread::get_id() == dispatcher_thread) {
      e->active = false; // from inside a callback: do not wait for ourselves
    } else {
      std::lock_guard<std::mutex> guard{e->running};
      e->active = false;
    }
  }
};

} // namespace detail

namespace {

[[noreturn]] void throw_error(const caf::error& err, const std::string& context = {}) {
  throw error{to_error_info(err, context)};
}

/// Jobs a facade call runs on its caller's thread before it waits.
constexpr int caller_budget = 8;

/// Sends one request to `dest` and waits for its reply, at most `timeout`.
template <class Result, class Handle, class... Ts>
void request_blocking(detail::facade_impl& impl, const Handle& dest, caf::timespan timeout,
                      std::optional<Result>& out, caf::error& failure, Ts&&... xs) {
  // No CAF request timeout: it would cost two trips to CAF's clock thread
  // per call (set and cancel). Every pgcm actor answers by the request's
  // deadline; the guard against a lost reply is this thread's own timed
  // wait (`after`), which involves no other thread.
  if (!dest) {
    failure = caf::make_error(caf::sec::invalid_argument);
    return;
  }
  auto until = caf::actor_clock::clock_type::now() + timeout;
  auto leased = impl.lease_asker();
  bool timed_out = false;
  auto& self = leased->self;
  auto req = self->new_request_id(caf::message_priority::normal);
  if (!impl.run_inline) { // remote, or inline execution off: the scheduler runs them
    dest->eq_impl(req, self->ctrl(), nullptr, std::forward<Ts>(xs)...);
  } else {
    // The actors this request reaches first (a node's supervisor, its
    // connection worker sending the query) run right here on the caller's
    // thread instead of waking a scheduler thread; then the caller waits,
    // on the query's socket itself if the worker lent it.
    detail::inline_unit here{*impl.sys};
    auto& lend = *leased->lend;
    lend.waiter.store(std::this_thread::get_id());
    here.offer(leased->lend);
    dest->eq_impl(req, self->ctrl(), &here, std::forward<Ts>(xs)...);
    here.run(caller_budget);
    here.offer(nullptr);
    if (lend.worker) lend.await(here, until, caller_budget);
  }
  caf::blocking_actor::accept_one_cond one;
  self->varargs_receive(
      one, req.response_id(), [&](Result& value) { out = std::move(value); },
      [&](caf::error& err) { failure = std::move(err); },
      caf::after(std::max(caf::timespan{0}, until - caf::actor_clock::clock_type::now())) >>
          [&] {
            timed_out = true;
            failure = caf::make_error(caf::sec::request_timeout);
          });
  impl.return_asker(std::move(leased), !timed_out);
  log::release_caf_thread_logger();
}

/// Waits for one reply of the manager, at most `timeout`; throws on error.
template <class Result, class... Ts>
Result ask(detail::facade_impl& impl, caf::timespan timeout, const std::string& context,
           Ts&&... xs) {
  auto manager = impl.current_manager();
  std::optional<Result> out;
  caf::error failure;
  request_blocking<Result>(impl, manager, timeout, out, failure, std::forward<Ts>(xs)...);
  if (!out) {
    auto info = to_error_info(failure, context);
    impl.note_failure(manager, info);
    throw error{std::move(info)};
  }
  return std::move(*out);
}

caf::timespan guard(milliseconds d) {
  // The manager answers by the deadline; this only guards against a lost reply.
  return caf::timespan{d + std::chrono::seconds{2}};
}

event_subscriber_actor::behavior_type
dispatcher_behavior(event_subscriber_actor::pointer, std::shared_ptr<detail::facade_impl> impl) {
  impl->dispatcher_thread = std::this_thread::get_id();
  return {
      [impl](event_atom, const node_event& ev) { impl->dispatch(ev); },
  };
}

std::shared_ptr<detail::facade_impl> make_impl(caf::actor_system& sys, manager_options opts) {
  auto impl = std::make_shared<detail::facade_impl>();
  impl->opts = opts;
  impl->sys = &sys;
  impl->run_inline = opts.effective_inline_execution();
  impl->board = std::make_shared<detail::routing_board>();
  auto hdl = spawn_manager(sys, opts, impl->board);
  if (!hdl) throw_error(hdl.error());
  impl->manager = *hdl;
  // The dispatcher has a thread of its own: a slow callback never stalls the
  // scheduler. It shares `impl` until shutdown() stops it.
  impl->dispatcher = sys.spawn<caf::detached>(dispatcher_behavior, impl);
  caf::anon_send(impl->manager, subscribe_atom::value, impl->dispatcher);
  return impl;
}

} // namespace

// -- subscription -------------------------------------------------------------

subscription& subscription::operator=(subscription&& other) noexcept {
  if (this != &other) {
    unsubscribe();
    owner_ = std::move(other.owner_);
    entry_ = std::move(other.entry_);
  }
  return *this;
}

subscription::~subscription() {
  unsubscribe();
}

void subscription::unsubscribe() {
  if (owner_ && entry_) owner_->remove(entry_);
  owner_.reset();
  entry_.reset();
}

bool subscription::active() const {
  return entry_ && entry_->active;
}

// -- connection_manager -------------------------------------------------------

namespace {

/// Settings from the environment that the facade refuses to start with.
void check_environment() {
  if (auto problem = log::environment_problem()) throw error{errc::invalid_config, *problem};
}

} // namespace

connection_manager::connection_manager(manager_options opts) {
  check_environment();
  if (auto problem = validate(opts)) throw error{*problem};
  auto cfg = std::make_unique<caf::actor_system_config>();
  register_types(*cfg);
  // Work sharing plus a per-thread slot for actor-to-actor hops (README,
  // design: measured against CAF's sharing and stealing policies).
  use_pgcm_scheduler(*cfg);
  auto sys = std::make_unique<caf::actor_system>(*cfg);
  impl_ = make_impl(*sys, opts);
  impl_->own_cfg = std::move(cfg);
  impl_->own_sys = std::move(sys);
  log::release_caf_thread_logger();
}

connection_manager::connection_manager(caf::actor_system& sys, manager_options opts) {
  check_environment();
  impl_ = make_impl(sys, opts);
}

connection_manager::connection_manager(const remote_endpoint& remote, manager_options opts) {
  check_environment();
  if (auto problem = validate(opts)) throw error{*problem};
  auto cfg = std::make_unique<caf::actor_system_config>();
  register_types(*cfg);
  use_pgcm_scheduler(*cfg);
  if (auto err = prepare_remote(*cfg, remote.tls)) throw_error(err);
  auto sys = std::make_unique<caf::actor_system>(*cfg);
  auto link = connect_manager(*sys, remote);
  if (!link) throw_error(link.error());
  auto impl = std::make_shared<detail::facade_impl>();
  impl->opts = opts;
  impl->sys = sys.get();
  impl->manager = *link;
  impl->is_remote = true;
  impl->remote = remote;
  impl->dispatcher = sys->spawn<caf::detached>(dispatcher_behavior, impl);
  caf::anon_send(impl->manager, subscribe_atom::value, impl->dispatcher);
  impl->own_cfg = std::move(cfg);
  impl->own_sys = std::move(sys);
  impl_ = std::move(impl);
  log::release_caf_thread_logger();
}

bool connection_manager::is_remote() const {
  return impl_->is_remote;
}

struct detail::facade_access {
  static manager_api_actor manager(const connection_manager& m) {
    std::lock_guard<std::mutex> guard{m.impl_->manager_mtx};
    return m.impl_->manager;
  }
};

manager_api_actor manager_handle(const connection_manager& mgr) {
  return detail::facade_access::manager(mgr);
}

namespace {

/// Ends a facade's own actor system on the calling thread, or leaves it
/// whole (threading.md I13). CAF 0.17's ~actor_system waits, without a bound,
/// for every running actor and then for every thread that still holds its
/// logger in a thread_local (each thread that spawned an actor or made a
/// scoped_actor in it, until it ends or lets go). Both are checked first,
/// within shutdown_timeout + 2 s: only a system with no actor left and no
/// reference but its own threads' is destroyed, so the destructor neither
/// hangs nor leaves a thread behind in the middle of ~actor_system. A system
/// that fails the check is leaked as it is (its idle threads end with the
/// process), with a warning naming the cause.
void destroy_own_system(detail::facade_impl& impl) {
  log::release_caf_thread_logger();
  auto& sys = *impl.own_sys;
  auto until = std::chrono::steady_clock::now() + impl.opts.shutdown_timeout + seconds{2};
  auto wait_for = [&](auto&& done) {
    for (auto pause = std::chrono::microseconds{100}; !done();
         pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds{10})) {
      if (std::chrono::steady_clock::now() >= until) return done();
      std::this_thread::sleep_for(pause);
    }
    return true;
  };
  // The logger references of a quiet CAF 0.17.6 system (measured; checked by
  // test_lifecycle and test_remote, local, remote and remote over TLS): three
  // of its own (the system, its clock thread, one more), one per scheduler
  // worker, two with a middleman (its multiplexer thread and actor), one with
  // the OpenSSL manager.
  auto own_refs = 3 + sys.scheduler().num_workers() + (sys.has_middleman() ? 2 : 0) +
                  (sys.has_openssl_manager() ? 1 : 0);
  const char* cause = nullptr;
  if (!wait_for([&] { return sys.registry().running() == 0; }))
    cause = "an actor of its actor system is still running";
  else if (!wait_for([&] { return sys.logger().get_reference_count() <= own_refs; }))
    cause = "a thread that made a caf::scoped_actor or spawned an actor in system() still holds "
            "CAF's logger (end it, or call caf::logger::set_current_actor_system(nullptr) on it)";
  if (cause != nullptr) {
    log::warn("actor system not destroyed: {}; it is left to process exit", cause);
    // Kept reachable (not a leak a sanitizer reports), never touched again.
    static auto* left = new std::vector<
        std::pair<std::unique_ptr<caf::actor_system>, std::unique_ptr<caf::actor_system_config>>>{};
    static std::mutex left_mtx;
    std::lock_guard<std::mutex> guard{left_mtx};
    left->emplace_back(std::move(impl.own_sys), std::move(impl.own_cfg));
    return;
  }
  PGCM_ASSERT(sys.registry().running() == 0, "I13: no actor runs when ~actor_system starts");
  impl.own_sys.reset();
  impl.own_cfg.reset();
}

} // namespace

connection_manager::~connection_manager() {
  try {
    shutdown();
  } catch (const std::exception& e) {
    log::error("shutdown in destructor failed: {}", e.what());
  }
  // Handles keep actors (and the dispatcher's private thread) alive, and
  // ~actor_system waits for them: release them first.
  impl_->close_askers();
  impl_->dispatcher = nullptr;
  {
    std::lock_guard<std::mutex> guard{impl_->manager_mtx};
    impl_->manager = nullptr;
  }
  if (impl_->own_sys) destroy_own_system(*impl_);
}

void connection_manager::initialize(std::vector<std::pair<std::string, node_config>> nodes) {
  auto& o = impl_->opts;
  auto t = guard(std::max(o.connect_timeout, o.effective_health_check_timeout()) + seconds{3});
  ask<ok_atom>(*impl_, t, {}, initialize_atom::value, std::move(nodes));
}

void connection_manager::add_node(const std::string& id, node_config cfg) {
  auto& o = impl_->opts;
  auto t = guard(std::max(o.connect_timeout, o.effective_health_check_timeout()) + seconds{3});
  ask<ok_atom>(*impl_, t, "node " + id, add_node_atom::value, id, std::move(cfg));
}

void connection_manager::remove_node(const std::string& id) {
  impl_->forget_route(id);
  ask<ok_atom>(*impl_, guard(impl_->opts.shutdown_timeout + seconds{1}), "node " + id,
               remove_node_atom::value, id);
}

std::optional<node_info> connection_manager::get_node(const std::string& id) const {
  try {
    return ask<node_info>(*impl_, guard(seconds{3}), "node " + id, caf::get_atom::value,
                          node_atom::value, id);
  } catch (const error& e) {
    if (e.code() == errc::node_not_found) return std::nullopt;
    throw;
  }
}

bool connection_manager::has_node(const std::string& id) const {
  return get_node(id).has_value();
}

std::vector<node_info> connection_manager::get_nodes() const {
  return ask<std::vector<node_info>>(*impl_, guard(seconds{3}), {}, caf::get_atom::value,
                                     nodes_atom::value);
}

std::vector<node_info> connection_manager::get_healthy_nodes() const {
  auto all = get_nodes();
  std::vector<node_info> out;
  for (auto& n : all)
    if (n.health.status == health_state::healthy) out.push_back(std::move(n));
  return out;
}

std::optional<health_status> connection_manager::get_health(const std::string& id) const {
  if (auto n = get_node(id)) return n->health;
  return std::nullopt;
}

std::optional<pool_stats> connection_manager::get_pool_stats(const std::string& id) const {
  if (auto n = get_node(id)) return n->pool;
  return std::nullopt;
}

std::vector<pool_stats> connection_manager::get_all_pool_stats() const {
  std::vector<pool_stats> out;
  for (auto& n : get_nodes())
    out.push_back(std::move(n.pool));
  return out;
}

namespace {

bool receiver_gone(const caf::error& err) {
  return err.category() == caf::atom("system") &&
         err.code() == static_cast<std::uint8_t>(caf::sec::request_receiver_down);
}

/// The supervisor of `node` if the manager is local and has that node; else
/// an invalid handle (the manager then answers, e.g. with node_not_found).
detail::facade_impl::route_entry route_to(detail::facade_impl& impl, const std::string& node) {
  if (impl.is_remote) return {};
  {
    std::lock_guard<std::mutex> guard{impl.routes_mtx};
    if (impl.routes_closed) return {};
    if (auto it = impl.routes.find(node); it != impl.routes.end()) return it->second;
  }
  auto mgr = caf::actor_cast<manager_actor>(impl.current_manager());
  std::optional<node_query_actor> out;
  caf::error failure;
  request_blocking<node_query_actor>(impl, mgr, caf::timespan{seconds{3}}, out, failure,
                                     route_atom::value, node);
  if (!out || !*out) return {};
  detail::facade_impl::route_entry entry{*out, nullptr};
  if (impl.run_inline) {
    // Leasing is part of inline execution: PGCM_INLINE=0 turns it off too.
    entry.leases = detail::find_lease_pool(caf::actor_cast<caf::strong_actor_ptr>(*out).get());
    if (entry.leases) entry.leases->used.store(true);
  }
  std::lock_guard<std::mutex> guard{impl.routes_mtx};
  if (impl.routes_closed) return {};
  impl.routes[node] = entry;
  return entry;
}

} // namespace

result_set connection_manager::query(const std::string& node, const std::string& sql,
                                     std::vector<param> params,
                                     std::optional<milliseconds> timeout) {
  auto t = timeout.value_or(impl_->opts.query_timeout);
  if (t.count() <= 0) throw error{errc::invalid_argument, "query timeout must be > 0 ms"};
  if (auto route = route_to(*impl_, node); route.sup) {
    // The manager checks what reaches it; this path skips the manager.
    if (auto problem = detail::transaction_statement_problem(sql); !problem.empty())
      throw error{errc::invalid_argument, "node " + node + ": " + problem};
    // What the manager would send the node (see cluster_manager, query_atom).
    auto job = make_query_job(sql, params, caf::timespan{t});
    std::optional<result_set> out;
    caf::error failure;
    // An idle connection runs it on this thread (src/lease.hpp); else, or
    // if the connections tried turned out broken, the node's supervisor.
    if (route.leases && !route.leases->closed.load()) {
      auto leased = detail::run_leased(*route.leases, job);
      if (leased.kind == detail::lease_outcome::answered) {
        if (leased.result) return std::move(*leased.result);
        failure = std::move(leased.error);
      }
    }
    if (!failure)
      request_blocking<result_set>(*impl_, route.sup, guard(t), out, failure, query_atom::value,
                                   std::move(job));
    if (out) return std::move(*out);
    auto info = to_error_info(failure, "node " + node);
    if (!receiver_gone(failure)) {
      if (info.code == errc::shutting_down)
        impl_->forget_route(node); // node removed or restarting: ask the manager next time
      throw error{std::move(info)};
    }
    // The supervisor was gone before it saw the request (node removed, or
    // restarted by the manager): the manager knows what is there now.
    impl_->forget_route(node);
  }
  return ask<result_set>(*impl_, guard(t), "node " + node, query_atom::value, node, sql,
                         std::move(params), caf::timespan{t});
}

std::uint64_t connection_manager::query_stream(
    const std::string& node, const std::string& sql, std::vector<param> params,
    const std::function<void(const result_set& rows)>& on_rows, stream_options opts) {
  if (opts.chunk_rows < 1 || opts.chunk_rows > 1'000'000)
    throw error{errc::invalid_argument, "stream_options.chunk_rows must be between 1 and 1000000"};
  auto t = opts.timeout.value_or(impl_->opts.query_timeout);
  if (t.count() <= 0) throw error{errc::invalid_argument, "stream timeout must be > 0 ms"};
  if (!on_rows) throw error{errc::invalid_argument, "query_stream: on_rows is empty"};
  auto manager = impl_->current_manager();
  auto until = caf::actor_clock::clock_type::now() + guard(t);
  caf::scoped_actor self{*impl_->sys};
  stream_request spec;
  spec.id = 1;
  spec.chunk_rows = static_cast<std::uint32_t>(opts.chunk_rows);
  // One chunk in the callback, one on its way: the reads go on meanwhile.
  spec.credit = 2;
  spec.timeout = caf::timespan{t};
  auto sink = caf::actor_cast<stream_sink_actor>(self.ptr());
  stream_control_actor control;
  caf::error failure;
  self->request(manager, guard(t), stream_atom::value, node, sql, std::move(params), spec, sink)
      .receive([&](stream_control_actor& c) { control = std::move(c); },
               [&](caf::error& err) { failure = std::move(err); });
  if (!control) {
    auto info = to_error_info(failure, "node " + node);
    impl_->note_failure(manager, info);
    throw error{std::move(info)};
  }
  self->monitor(control);
  std::exception_ptr thrown; // from on_rows: cancelled, waiting for the end
  std::optional<std::uint64_t> total;
  caf::error end_error;
  // The control handle's end may overtake the stream's last messages (over
  // remote access they come by another path, and a proxy monitored after its
  // actor ended reports exit_reason::unknown): after its down, the end still
  // counts if it arrives within a short grace.
  std::optional<caf::actor_clock::time_point> down_until;
  caf::error down_reason;
  while (!total) {
    auto now = caf::actor_clock::clock_type::now();
    auto left = (down_until ? std::min(until, *down_until) : until) - now;
    bool lost = false;
    self->receive(
        [&](stream_rows_atom, std::uint64_t, result_set& rows) {
          if (thrown) return; // cancelled; rows still on their way
          try {
            on_rows(rows);
          } catch (...) {
            thrown = std::current_exception();
            self->send(control, cancel_atom::value);
            return;
          }
          self->send(control, credit_atom::value, std::uint32_t{1});
        },
        [&](stream_end_atom, std::uint64_t, std::uint64_t rows, caf::error& err) {
          total = rows;
          end_error = std::move(err);
        },
        [&](caf::down_msg& dm) {
          if (dm.source != control.address() || down_until) return;
          down_until = caf::actor_clock::clock_type::now() + std::chrono::milliseconds{500};
          down_reason = std::move(dm.reason);
        },
        caf::after(std::max(caf::timespan{0}, left)) >>
            [&] {
              lost = true;
              if (down_until && caf::actor_clock::clock_type::now() < until)
                end_error = std::move(down_reason);
              else
                end_error = make_error(errc::query_timeout, "node " + node +
                                                                ": stream timeout (no end within " +
                                                                std::to_string(t.count()) + " ms)");
            });
    if (lost) {
      self->send(control, cancel_atom::value);
      if (thrown) std::rethrow_exception(thrown);
      auto info = to_error_info(end_error, "node " + node);
      if (info.code != errc::query_timeout) {
        info.code = is_remote() ? errc::remote_disconnected : errc::connection_failed;
        info.message = "node " + node + ": stream lost (" + info.message + ")";
      }
      impl_->note_failure(manager, info);
      throw error{std::move(info)};
    }
  }
  if (thrown) std::rethrow_exception(thrown);
  if (end_error) throw error{to_error_info(end_error, "node " + node)};
  return *total;
}

result_set connection_manager::query(const route& r, const std::string& sql,
                                     std::vector<param> params,
                                     std::optional<milliseconds> timeout) {
  auto t = timeout.value_or(impl_->opts.query_timeout);
  if (t.count() <= 0) throw error{errc::invalid_argument, "query timeout must be > 0 ms"};
  if (r.max_lag_bytes && *r.max_lag_bytes < 0)
    throw error{errc::invalid_argument, "route max_lag_bytes must be >= 0"};
  if (r.max_lag && r.max_lag->count() < 0)
    throw error{errc::invalid_argument, "route max_lag must be >= 0 ms"};
  // Resolved here with the manager's rules and its latest view, then the
  // per-node path. With want_lsn (two statements on the primary), no
  // eligible node (the manager answers why, or waits primary_wait for a
  // primary) or a remote manager: through the manager.
  if (auto& board = impl_->board; board && !r.want_lsn) {
    if (auto snap = board->get()) {
      auto picked = snap->table.pick(
          r, [&snap](const std::string& id) { return snap->load_of(id); }, board->next_turn());
      if (picked.node) {
        try {
          return query(*picked.node, sql, params, timeout);
        } catch (const error& e) {
          if (e.code() != errc::node_not_found) throw; // removed meanwhile: ask the manager
        }
      }
    }
  }
  return ask<result_set>(*impl_, guard(t), "target " + to_string(r.to), query_atom::value, r, sql,
                         std::move(params), caf::timespan{t});
}

namespace {

/// The route to node `id` whose supervisor is `sup` (the manager's current
/// one, from its snapshot): the cached one if it is that supervisor's, else
/// a new entry replacing it. Invalid after shutdown().
detail::facade_impl::route_entry route_for(detail::facade_impl& impl, const std::string& id,
                                           const caf::strong_actor_ptr& sup) {
  {
    std::lock_guard<std::mutex> guard{impl.routes_mtx};
    if (impl.routes_closed) return {};
    if (auto it = impl.routes.find(id);
        it != impl.routes.end() && it->second.sup && it->second.sup->ctrl() == sup.get())
      return it->second;
  }
  detail::facade_impl::route_entry entry{caf::actor_cast<node_query_actor>(sup), nullptr};
  entry.leases = detail::find_lease_pool(sup.get());
  if (entry.leases) entry.leases->used.store(true);
  std::lock_guard<std::mutex> guard{impl.routes_mtx};
  if (impl.routes_closed) return {};
  impl.routes[id] = entry;
  return entry;
}

/// Extra time given to a node beyond the query's deadline before it is
/// answered for (the manager's guard_margin, cluster_manager.cpp).
constexpr std::int64_t fan_out_margin_ns = 1'000'000'000;

/// query_all / query_healthy on the caller's thread (issue 11): the nodes
/// the manager's fan-out would address (its snapshot: same nodes, order and
/// healthy filter), each run on a lease of its pool, all of them with one
/// poll() here; a node with no idle connection goes to its supervisor (an
/// actor request sent before the poll loop, received after). Every node
/// gets exactly one result, by the deadline plus the manager's margin.
/// Nullopt: the manager's fan-out answers instead (remote, inline
/// execution off, no snapshot, a statement the manager refuses, shutdown).
std::optional<std::vector<node_result_set>> fan_out_here(detail::facade_impl& impl,
                                                         const std::string& sql,
                                                         const std::vector<param>& params,
                                                         milliseconds t, bool healthy_only) {
  if (impl.is_remote || !impl.run_inline || !impl.board) return std::nullopt;
  auto snap = impl.board->get();
  if (!snap) return std::nullopt; // not started, or shutting down: the manager answers
  if (!detail::transaction_statement_problem(sql).empty()) return std::nullopt;
  struct target {
    const detail::routing_snapshot::fan_node* node;
    detail::facade_impl::route_entry route;
    query_job job;
    detail::leased_query* leased = nullptr;
    std::optional<caf::message_id> asked; // the actor way: the request's id
  };
  std::vector<target> targets;
  targets.reserve(snap->nodes.size());
  for (auto& n : snap->nodes) {
    if (healthy_only && !n.healthy) continue;
    if (!n.supervisor) return std::nullopt;
    targets.push_back({&n, {}, {}, nullptr, std::nullopt});
  }
  std::vector<node_result_set> results(targets.size());
  if (targets.empty()) return results;
  for (auto& x : targets) {
    x.route = route_for(impl, x.node->id, x.node->supervisor);
    if (!x.route.sup) return std::nullopt; // shut down meanwhile: the manager answers
  }
  auto job = make_query_job(sql, params, caf::timespan{t});
  for (auto& x : targets)
    x.job = job;
  // One result per node: leased ones here, the others from their supervisor.
  auto answer = [&](std::size_t i, detail::lease_outcome& out) {
    auto& entry = results[i];
    entry.node_id = targets[i].node->id;
    entry.success = out.result.has_value();
    if (out.result)
      entry.data = std::move(*out.result);
    else
      entry.error = to_error_info(out.error, "node " + entry.node_id);
  };
  auto asker = impl.lease_asker();
  auto& self = asker->self;
  auto ask_node = [&](target& x) {
    // Run by the scheduler (no inline unit: the caller polls its leases).
    x.asked = self->new_request_id(caf::message_priority::normal);
    x.route.sup->eq_impl(*x.asked, self->ctrl(), nullptr, query_atom::value, x.job);
  };
  std::deque<detail::leased_query> leased;
  std::vector<detail::leased_query*> running;
  // Several leases at once, one per node's pool, none waited for
  // (threading.md I6): a node with none idle goes the actor way at once.
  for (std::size_t i = 0; i < targets.size(); ++i) {
    auto& x = targets[i];
    if (x.route.leases && !x.route.leases->closed.load()) {
      x.leased = &leased.emplace_back(*x.route.leases, x.job);
      if (x.leased->start(0)) {
        running.push_back(x.leased);
        continue;
      }
      if (x.leased->outcome().kind == detail::lease_outcome::answered) continue;
    }
    ask_node(x);
  }
  detail::drive_leased(running);
  for (std::size_t i = 0; i < targets.size(); ++i) {
    auto& x = targets[i];
    if (x.asked || !x.leased) continue;
    if (x.leased->outcome().kind == detail::lease_outcome::answered)
      answer(i, x.leased->outcome());
    else
      ask_node(x); // it certainly did not run (attempt says if it was tried)
  }
  // The actor way's answers, each by the deadline plus the margin.
  auto give_up = caf::actor_clock::clock_type::now() +
                 std::chrono::nanoseconds{job.deadline_ns + fan_out_margin_ns - steady_now_ns()};
  bool timed_out = false;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    auto& x = targets[i];
    if (!x.asked) continue;
    auto& entry = results[i];
    entry.node_id = x.node->id;
    caf::blocking_actor::accept_one_cond one;
    self->varargs_receive(
        one, x.asked->response_id(),
        [&](result_set& rs) {
          entry.success = true;
          entry.data = std::move(rs);
        },
        [&](caf::error& err) {
          entry.success = false;
          entry.error = to_error_info(err, "node " + entry.node_id);
        },
        caf::after(std::max(caf::timespan{0}, give_up - caf::actor_clock::clock_type::now())) >>
            [&] {
              timed_out = true;
              entry.success = false;
              entry.error = to_error_info(detail::node_error(errc::query_timeout, entry.node_id,
                                                             "no answer by the deadline"));
            });
  }
  impl.return_asker(std::move(asker), !timed_out);
  log::release_caf_thread_logger();
  return results;
}

std::vector<node_result_set> fan_out(detail::facade_impl& impl, const std::string& sql,
                                     std::vector<param> params, std::optional<milliseconds> timeout,
                                     bool healthy_only) {
  auto t = timeout.value_or(impl.opts.query_timeout);
  if (t.count() <= 0) throw error{errc::invalid_argument, "query timeout must be > 0 ms"};
  if (auto here = fan_out_here(impl, sql, params, t, healthy_only)) return std::move(*here);
  return ask<std::vector<node_result_set>>(impl, guard(t), {}, query_all_atom::value, sql,
                                           std::move(params), caf::timespan{t}, healthy_only);
}

} // namespace

std::vector<node_result_set> connection_manager::query_all(const std::string& sql,
                                                           std::vector<param> params,
                                                           std::optional<milliseconds> timeout) {
  return fan_out(*impl_, sql, std::move(params), timeout, false);
}

std::vector<node_result_set>
connection_manager::query_healthy(const std::string& sql, std::vector<param> params,
                                  std::optional<milliseconds> timeout) {
  return fan_out(*impl_, sql, std::move(params), timeout, true);
}

subscription connection_manager::on(event type, std::function<void(const node_event&)> callback) {
  return subscribe(type, std::move(callback));
}

subscription connection_manager::on_any(std::function<void(const node_event&)> callback) {
  return subscribe(std::nullopt, std::move(callback));
}

subscription connection_manager::subscribe(std::optional<event> type,
                                           std::function<void(const node_event&)> callback) {
  if (!callback) throw error{errc::invalid_argument, "event callback must not be empty"};
  auto entry = std::make_shared<detail::subscription_entry>();
  entry->type = type;
  entry->callback = std::move(callback);
  {
    std::lock_guard<std::mutex> guard{impl_->subs_mtx};
    impl_->subs.push_back(entry);
  }
  subscription s;
  s.owner_ = impl_;
  s.entry_ = std::move(entry);
  return s;
}

void connection_manager::shutdown() {
  std::call_once(impl_->shutdown_once, [this] {
    impl_->close_routes();
    if (impl_->is_remote) {
      // A remote client detaches; the server's manager keeps running.
      manager_api_actor link;
      bool broken = false;
      {
        std::lock_guard<std::mutex> guard{impl_->manager_mtx};
        impl_->closed = true; // no reconnect after shutdown
        link = impl_->manager;
        broken = impl_->link_broken;
        impl_->link_broken = false;
      }
      if (link && !broken) caf::anon_send(link, unsubscribe_atom::value, impl_->dispatcher);
      caf::anon_send_exit(link, caf::exit_reason::user_shutdown);
      caf::anon_send_exit(impl_->dispatcher, caf::exit_reason::user_shutdown);
      return;
    }
    {
      std::lock_guard<std::mutex> guard{impl_->manager_mtx};
      impl_->closed = true;
    }
    try {
      ask<ok_atom>(*impl_, guard(impl_->opts.shutdown_timeout + seconds{1}), {},
                   shutdown_atom::value);
    } catch (const error& e) {
      if (e.code() != errc::shutting_down) log::warn("shutdown: {}", e.what());
    }
    // Events published during shutdown are in the dispatcher's mailbox
    // before this exit message: they still reach the callbacks.
    caf::anon_send_exit(impl_->dispatcher, caf::exit_reason::user_shutdown);
  });
}

caf::actor_system& connection_manager::system() {
  return *impl_->sys;
}

const manager_options& connection_manager::options() const {
  return impl_->opts;
}

} // namespace pgcm
