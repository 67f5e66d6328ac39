#include "pgcm/actors/cluster_manager.hpp"

#include <algorithm>
#include <functional>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "core_actor.hpp"
#include "log.hpp"
#include "node_error.hpp"
#include "pgcm/actors/connection_worker.hpp"
#include "pgcm/actors/node_supervisor.hpp"
#include "pgcm/actors/transaction_session.hpp"
#include "pgcm/messages/error.hpp"
#include "pq_connection.hpp"
#include "reactor.hpp"
#include "routing_snapshot.hpp"
#include "routing_table.hpp"

namespace pgcm {

namespace {

using namespace std::chrono;

/// Extra time the manager gives a node beyond the request's own deadline
/// before it answers for it: the node normally answers first, with its own
/// query_timeout, after cancelling the statement.
constexpr auto guard_margin = seconds{1};

struct managed_node {
  node_supervisor_actor supervisor;
  node_config cfg; // full, with password: needed to restart the supervisor
  health_status health;
  pool_stats stats;
};

/// One query_all in progress: the per-node answers so far.
struct fan_out {
  caf::typed_response_promise<std::vector<node_result_set>> rp;
  std::vector<node_result_set> results;
  std::vector<bool> answered;
  std::size_t remaining = 0;
  std::int64_t give_up_ns = 0; // deadline + guard_margin
  bool done = false;
};

/// A routed request for the primary, waiting for one to appear.
struct pending_primary {
  route r;
  query_job job;
  caf::typed_response_promise<result_set> rp;
  std::int64_t give_up_ns = 0; // now + primary_wait, capped by the job's deadline
};

caf::error shutting_down_error();

struct manager_data {
  static inline const char* name = "pgcm.core.cluster_manager"; // a name only (logs)
  manager_options opts;
  // Fan-outs waiting for nodes. Their guard against a lost node answer is
  // one sweep timer for all of them, not a CAF request timeout per node
  // (which would cost two trips to CAF's clock thread per node and round).
  std::unordered_map<std::uint64_t, std::shared_ptr<fan_out>> fan_outs;
  std::uint64_t next_fan_out = 0;
  bool sweep_scheduled = false;
  std::shared_ptr<detail::reactor> io;
  std::vector<std::string> order; // ids in the order they were added
  std::unordered_map<std::string, managed_node> nodes;
  std::vector<event_subscriber_actor> subscribers;
  // Replication view (roles, lag, conflicts) from every node's probes, and
  // target::primary requests waiting for a primary (manager_options::primary_wait).
  detail::routing_table routes;
  std::vector<pending_primary> waiting_for_primary;
  // A probe round triggered by signs of a failover (issue 10): the nodes
  // whose probe has not reported yet, and when the round is given up on.
  // One round at a time: signs during a round are part of it.
  std::unordered_set<std::string> probe_round_left;
  std::int64_t probe_round_until_ns = 0;
  // The local facade's copy of what routing needs (null: no facade reads it).
  std::shared_ptr<detail::routing_board> board;
  std::unordered_map<std::string, double> published_load;
  bool shutting_down = false;
  std::vector<caf::typed_response_promise<ok_atom>> shutdown_waiters;
  // Replies owed once a node answers (get_nodes, get_node, remove_node),
  // each answering its requester with shutting_down if called: the manager
  // may quit first, and its pending requests' handlers then never run.
  std::unordered_map<std::uint64_t, std::function<void()>> owed;
  std::uint64_t next_owed = 0;

  ~manager_data() {
    // Exactly one answer per request, even when the manager ends first
    // (threading.md I9).
    for (auto& kv : fan_outs)
      if (!kv.second->done) {
        kv.second->done = true;
        kv.second->rp.deliver(shutting_down_error());
      }
    for (auto& kv : owed)
      kv.second();
    for (auto& w : waiting_for_primary)
      w.rp.deliver(shutting_down_error());
    if (board) board->publish(nullptr); // routed calls ask the (gone) manager again
  }
};

/// Registers a reply the manager owes (answered with shutting_down by
/// ~manager_data unless `*given`); erase the key from `owed` once given.
template <class T>
std::uint64_t owe(manager_data& st, caf::typed_response_promise<T> rp,
                  std::shared_ptr<bool> given) {
  auto key = ++st.next_owed;
  st.owed.emplace(key, [rp, given]() mutable {
    if (*given) return;
    *given = true;
    rp.deliver(shutting_down_error());
  });
  return key;
}

// A core actor: may run inline (src/core_actor.hpp, docs/threading.md I5).
using self_ptr = detail::core_pointer<manager_actor, manager_data>;

caf::error not_found(const std::string& id) {
  return make_error(errc::node_not_found, "node \"" + id + "\" not found");
}

caf::error shutting_down_error() {
  return make_error(errc::shutting_down, "manager is shutting down");
}

void broadcast(self_ptr self, const node_event& ev) {
  for (auto& sub : self->state.subscribers)
    self->send(sub, event_atom::value, ev);
}

/// The supervisor of node `id`, or why there is none.
/// A checked stream job, due `spec.timeout` (0: query_timeout) from now.
caf::expected<stream_job> make_stream_job(const manager_options& opts, std::string sql,
                                          std::vector<param> params, const stream_request& spec,
                                          stream_sink_actor sink) {
  if (spec.chunk_rows < 1 || spec.chunk_rows > 1'000'000)
    return make_error(errc::invalid_argument,
                      "stream: chunk_rows must be between 1 and 1000000 (got " +
                          std::to_string(spec.chunk_rows) + ")");
  if (spec.credit < 1)
    return make_error(errc::invalid_argument, "stream: credit must be at least 1");
  if (!sink) return make_error(errc::invalid_argument, "stream: no sink");
  if (spec.timeout.count() < 0)
    return make_error(errc::invalid_argument, "stream: timeout must not be negative");
  auto timeout = spec.timeout.count() == 0 ? caf::timespan{opts.query_timeout} : spec.timeout;
  auto q = make_query_job(std::move(sql), std::move(params), timeout);
  stream_job job;
  job.sql = std::move(q.sql);
  job.params = std::move(q.params);
  job.spec = spec;
  job.sink = std::move(sink);
  job.deadline_ns = q.deadline_ns;
  job.timeout_ms = q.timeout_ms;
  return job;
}

caf::expected<node_supervisor_actor> supervisor_of(self_ptr self, const std::string& id) {
  auto& st = self->state;
  if (st.shutting_down) return shutting_down_error();
  auto it = st.nodes.find(id);
  if (it == st.nodes.end()) return not_found(id);
  return it->second.supervisor;
}

/// `h` with the manager's replication view of node `id` (lag, conflict).
health_status with_view(const manager_data& st, const std::string& id, health_status h) {
  if (auto v = st.routes.view(id)) {
    h.lag_bytes = v->lag_bytes;
    h.lag = v->lag;
    h.conflict = v->conflict;
  }
  return h;
}

/// In flight and waiting relative to pool size: what routing balances on.
double load_of(const manager_data& st, const std::string& id) {
  auto it = st.nodes.find(id);
  if (it == st.nodes.end()) return 1e9;
  auto& n = it->second;
  auto size = std::max(1, n.cfg.pool.max);
  return static_cast<double>(n.stats.in_flight_requests + n.stats.waiting_requests) / size;
}

/// Publishes what routing needs for the local facade (routing_snapshot.hpp):
/// after every change of the routing table or of a node's load.
void publish_routes(self_ptr self) {
  auto& st = self->state;
  if (!st.board) return;
  if (st.shutting_down) {
    st.board->publish(nullptr);
    return;
  }
  auto snap = std::make_shared<detail::routing_snapshot>();
  snap->table = st.routes;
  for (auto& [id, n] : st.nodes)
    snap->load[id] = load_of(st, id);
  // The query_all handler's targets, in its order (facade fan-out).
  snap->nodes.reserve(st.order.size());
  for (auto& id : st.order) {
    auto& n = st.nodes.at(id);
    snap->nodes.push_back({id, n.health.status == health_state::healthy,
                           caf::actor_cast<caf::strong_actor_ptr>(n.supervisor)});
  }
  st.published_load = snap->load;
  st.board->publish(std::move(snap));
}

/// Republishes when node `id`'s load changed (its pool stats did).
void load_changed(self_ptr self, const std::string& id) {
  auto& st = self->state;
  if (!st.board) return;
  auto it = st.published_load.find(id);
  if (it == st.published_load.end() || it->second != load_of(st, id)) publish_routes(self);
}

detail::routing_table::pick_result pick_node(self_ptr self, const route& r) {
  auto& st = self->state;
  return st.routes.pick(r, [&st](const std::string& id) { return load_of(st, id); });
}

/// Sends a routed job to `node`; with want_lsn on the primary, the answer
/// carries a WAL insert position read after the statement returned.
void dispatch_routed(self_ptr self, const std::string& node, const route& r, query_job job,
                     caf::typed_response_promise<result_set> rp) {
  auto& st = self->state;
  auto sup = st.nodes.at(node).supervisor;
  bool is_primary = st.routes.primary() && *st.routes.primary() == node;
  if (!r.want_lsn || !is_primary) {
    rp.delegate(sup, query_atom::value, std::move(job));
    return;
  }
  auto deadline = job.deadline_ns;
  auto timeout_ms = job.timeout_ms;
  // Two requests from here: the reply is owed (answered shutting_down by
  // ~manager_data if the manager ends first, threading.md I9).
  auto given = std::make_shared<bool>(false);
  auto key = owe(st, rp, given);
  auto finish = [self, rp, given, key](caf::expected<result_set> out) mutable {
    if (*given) return;
    *given = true;
    self->state.owed.erase(key);
    if (out)
      rp.deliver(std::move(*out));
    else
      rp.deliver(std::move(out.error()));
  };
  self->request(sup, caf::infinite, query_atom::value, std::move(job))
      .then(
          [=](result_set& rs) mutable {
            query_job pos;
            pos.sql = "SELECT pg_current_wal_insert_lsn()::text";
            pos.deadline_ns = deadline;
            pos.timeout_ms = timeout_ms;
            self->request(sup, caf::infinite, query_atom::value, std::move(pos))
                .then(
                    [=](result_set& at) mutable {
                      try {
                        if (at.size() == 1 && at.column_count() == 1 && !at[0].is_null(0))
                          rs.set_commit_lsn(lsn::parse(std::string{at[0].text(0)}));
                      } catch (const error&) {
                      }
                      if (!rs.commit_lsn())
                        finish(detail::node_error(errc::internal, node,
                                                  "no WAL position after the statement"));
                      else
                        finish(std::move(rs));
                    },
                    [=](caf::error& err) mutable {
                      // The statement ran; only its position is missing.
                      auto info = to_error_info(err, "node " + node);
                      info.message = "the statement ran, but its WAL position could not be read: " +
                                     info.message;
                      finish(to_caf_error(info));
                    });
          },
          [=](caf::error& err) mutable { finish(std::move(err)); });
}

// -- transactions ---------------------------------------------------------------

/// Why `o` cannot start a transaction, or none.
caf::error check_transaction_options(const transaction_options& o) {
  if (o.retries < 0) return make_error(errc::invalid_argument, "transaction retries must be >= 0");
  if (o.timeout && o.timeout->count() <= 0)
    return make_error(errc::invalid_argument, "transaction timeout must be > 0 ms");
  if (static_cast<int>(o.level) > static_cast<int>(isolation::serializable))
    return make_error(errc::invalid_argument, "unknown isolation level");
  return caf::none;
}

/// Starts a transaction session on `node`, owned by the requester.
caf::result<transaction_session> begin_on(self_ptr self, const std::string& node,
                                          const transaction_options& o) {
  auto sup = supervisor_of(self, node);
  if (!sup) return std::move(sup.error());
  session_config sc;
  sc.supervisor = *sup;
  sc.node_id = node;
  sc.opts = o;
  sc.timeout = caf::timespan{o.timeout.value_or(self->state.opts.query_timeout)};
  sc.owner = self->current_sender();
  return transaction_session{spawn_transaction_session(self->system(), std::move(sc)), node};
}

// -- end of transactions ----------------------------------------------------------

/// Sends waiting target::primary requests once a primary is there.
void retry_primary_waits(self_ptr self) {
  auto& st = self->state;
  if (st.waiting_for_primary.empty()) return;
  std::vector<pending_primary> still;
  auto waiting = std::move(st.waiting_for_primary);
  st.waiting_for_primary.clear();
  for (auto& w : waiting) {
    auto picked = pick_node(self, w.r);
    if (picked.node)
      dispatch_routed(self, *picked.node, w.r, std::move(w.job), w.rp);
    else if (picked.code == errc::split_brain)
      w.rp.deliver(make_error(picked.code, picked.message));
    else
      still.push_back(std::move(w));
  }
  st.waiting_for_primary = std::move(still);
}

void expire_primary_waits(self_ptr self, std::int64_t now) {
  auto& st = self->state;
  auto& ws = st.waiting_for_primary;
  for (auto it = ws.begin(); it != ws.end();) {
    if (now < it->give_up_ns) {
      ++it;
      continue;
    }
    auto picked = pick_node(self, it->r);
    it->rp.deliver(make_error(picked.code, picked.message + " (waited " +
                                               std::to_string(st.opts.primary_wait.count()) +
                                               " ms for a primary)"));
    it = ws.erase(it);
  }
}

void fan_out_answered(self_ptr self, std::uint64_t key, fan_out& agg, std::size_t i) {
  if (agg.done || agg.answered[i]) return; // already answered for this node by the sweep
  agg.answered[i] = true;
  if (--agg.remaining > 0) return;
  agg.done = true;
  agg.rp.deliver(std::move(agg.results));
  self->state.fan_outs.erase(key);
}

constexpr auto sweep_interval = milliseconds{250};

void schedule_sweep(self_ptr self) {
  auto& st = self->state;
  if (st.sweep_scheduled || (st.fan_outs.empty() && st.waiting_for_primary.empty())) return;
  st.sweep_scheduled = true;
  self->delayed_send(self, sweep_interval, tick_atom::value, std::uint64_t{0});
}

/// Answers for every node that let a fan-out pass its deadline plus the
/// guard margin without an answer (a lost message: nodes answer by the
/// deadline themselves).
void sweep_fan_outs(self_ptr self) {
  auto& st = self->state;
  st.sweep_scheduled = false;
  auto now = steady_now_ns();
  for (auto it = st.fan_outs.begin(); it != st.fan_outs.end();) {
    auto& agg = *it->second;
    if (now < agg.give_up_ns) {
      ++it;
      continue;
    }
    for (std::size_t i = 0; i < agg.results.size(); ++i) {
      if (agg.answered[i]) continue;
      auto& entry = agg.results[i];
      entry.success = false;
      entry.error = to_error_info(
          detail::node_error(errc::query_timeout, entry.node_id, "no answer by the deadline"));
    }
    agg.done = true;
    agg.rp.deliver(std::move(agg.results));
    it = st.fan_outs.erase(it);
  }
  expire_primary_waits(self, now);
  schedule_sweep(self);
}

node_info info_of(const manager_data& st, const std::string& id, const managed_node& n) {
  node_info out;
  out.id = id;
  out.config = redacted(n.cfg);
  out.health = with_view(st, id, n.health);
  out.pool = n.stats;
  return out;
}

/// Publishes node_role for `id` (role, timeline or conflict changed) and
/// logs a conflict as an error.
void publish_role(self_ptr self, const std::string& id) {
  auto& st = self->state;
  auto it = st.nodes.find(id);
  if (it == st.nodes.end()) return;
  auto h = with_view(st, id, it->second.health);
  if (h.conflict)
    log::error("node {}: kept out of routing: {}", id, *h.conflict);
  else
    log::info("node {}: role {} on timeline {}", id, to_string(h.role), h.timeline);
  node_event ev;
  ev.type = event::node_role;
  ev.node_id = id;
  ev.health = std::move(h);
  broadcast(self, ev);
}

/// A node's probe finished: update the cluster's replication view, publish
/// node_health (status or role changed) and node_role (role, timeline or
/// conflict changed, for this node or another one), and send target::primary
/// requests that waited for a primary.
void on_probe_report(self_ptr self, const std::string& id, probe_report& rep) {
  auto& st = self->state;
  auto& n = st.nodes.at(id);
  n.health = rep.health;
  st.probe_round_left.erase(id);
  detail::node_facts f;
  if (auto old = st.routes.facts(id)) f = *old;
  f.healthy = rep.health.status == health_state::healthy;
  f.role = rep.health.role;
  f.timeline = rep.health.timeline;
  f.system_identifier = rep.health.system_identifier;
  if (rep.probe.ok) {
    f.wal_lsn = rep.health.wal_lsn;
    f.receive_lsn = rep.health.receive_lsn;
    f.last_replay.reset();
    if (rep.probe.last_replay_us != 0)
      f.last_replay = system_clock::time_point{
          duration_cast<system_clock::duration>(microseconds{rep.probe.last_replay_us})};
    f.sampled_at = rep.health.last_check;
  }
  auto changed = st.routes.update(id, f);
  if (rep.changed) {
    node_event ev;
    ev.type = event::node_health;
    ev.node_id = id;
    ev.health = with_view(st, id, n.health);
    broadcast(self, ev);
  }
  // Republished only when routing would change: with many idle nodes, most
  // probes change nothing but when they were taken (issue 11: 100 idle nodes
  // under 1 % of a core; rebuilding the snapshot per probe cost half of it).
  auto published = st.board ? st.board->get() : nullptr;
  if (rep.changed || !changed.empty() || !published || !published->table.same_routing(st.routes))
    publish_routes(self);
  for (auto& other : changed)
    publish_role(self, other);
  retry_primary_waits(self);
}

/// Signs of a failover on node `id` (a write answered 25006, a session the
/// server ended): if `id` is believed primary, probe every node now instead
/// of at the next interval. Bursts coalesce: while a round runs (until every
/// node reported a probe, or the probe timeout and a second passed), further
/// signs are part of it.
void on_failover_sign(self_ptr self, const std::string& id) {
  auto& st = self->state;
  auto f = st.routes.facts(id);
  if (st.shutting_down || f == nullptr || f->role != node_role::primary) return;
  auto now = steady_now_ns();
  if (!st.probe_round_left.empty() && now < st.probe_round_until_ns) return;
  log::warn("node {}: signs of a failover (a write refused as read-only or a session ended by "
            "the server); probing every node now",
            id);
  st.probe_round_left.clear();
  for (auto& [nid, n] : st.nodes) {
    st.probe_round_left.insert(nid);
    self->send(n.supervisor, probe_atom::value);
  }
  st.probe_round_until_ns =
      now +
      duration_cast<nanoseconds>(st.opts.effective_health_check_timeout() + seconds{1}).count();
}

/// Adds validated nodes, starts them in parallel and answers once every one
/// has connected or failed its first attempt.
caf::typed_response_promise<ok_atom> add_nodes(self_ptr self, std::vector<node_entry> entries) {
  auto rp = self->make_response_promise<ok_atom>();
  auto& st = self->state;
  if (st.shutting_down) {
    rp.deliver(shutting_down_error());
    return rp;
  }
  std::unordered_set<std::string> seen;
  for (auto& [id, cfg] : entries) {
    if (id.empty()) {
      rp.deliver(make_error(errc::invalid_config, "node id must not be empty"));
      return rp;
    }
    if (st.nodes.count(id) > 0 || !seen.insert(id).second) {
      rp.deliver(make_error(errc::duplicate_node, "node \"" + id + "\" already exists"));
      return rp;
    }
    if (auto problem = validate(id, cfg)) {
      rp.deliver(to_caf_error(*problem));
      return rp;
    }
  }
  if (entries.empty()) {
    rp.deliver(ok_atom::value);
    return rp;
  }
  auto remaining = std::make_shared<std::size_t>(entries.size());
  for (auto& [id, cfg] : entries) {
    auto& n = st.nodes[id];
    n.cfg = std::move(cfg);
    n.stats.node_id = id;
    st.order.push_back(id);
    st.routes.update(id, detail::node_facts{}); // known from now on, in the order added
    log::info("node {}: added ({})", id, describe(n.cfg));
    node_event ev;
    ev.type = event::node_added;
    ev.node_id = id;
    broadcast(self, ev);
    auto& node = st.nodes.at(id);
    node.supervisor = spawn_node_supervisor(self->system(), self, id, node.cfg, st.opts, st.io);
    self->monitor(node.supervisor);
    self->request(node.supervisor, caf::infinite, start_atom::value)
        .then(
            [rp, remaining](ok_atom) mutable {
              if (--*remaining == 0) rp.deliver(ok_atom::value);
            },
            [rp, remaining](caf::error&) mutable {
              if (--*remaining == 0) rp.deliver(ok_atom::value);
            });
  }
  publish_routes(self);
  return rp;
}

void remove_from_order(manager_data& st, const std::string& id) {
  st.order.erase(std::remove(st.order.begin(), st.order.end(), id), st.order.end());
}

manager_actor::behavior_type cluster_manager(self_ptr self, manager_options opts,
                                             std::shared_ptr<detail::reactor> io,
                                             std::shared_ptr<detail::routing_board> board) {
  self->state.opts = opts;
  self->state.io = std::move(io);
  self->state.board = std::move(board);
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& st = self->state;
    auto& subs = st.subscribers;
    subs.erase(
        std::remove_if(subs.begin(), subs.end(),
                       [&](const event_subscriber_actor& s) { return s.address() == dm.source; }),
        subs.end());
    if (st.shutting_down) return;
    for (auto& [id, n] : st.nodes)
      if (n.supervisor && n.supervisor.address() == dm.source) {
        log::error("node {}: supervisor terminated unexpectedly ({}); restarting it", id,
                   caf::to_string(dm.reason));
        n.supervisor = spawn_node_supervisor(self->system(), self, id, n.cfg, st.opts, st.io);
        self->monitor(n.supervisor);
        self->request(n.supervisor, caf::infinite, start_atom::value)
            .then([](ok_atom) {}, [](caf::error&) {});
        publish_routes(self); // the facade's fan-out addresses the new supervisor
        return;
      }
  });
  return {
      [=](initialize_atom, std::vector<node_entry>& entries) -> caf::result<ok_atom> {
        return add_nodes(self, std::move(entries));
      },
      [=](add_node_atom, std::string& id, node_config& cfg) -> caf::result<ok_atom> {
        std::vector<node_entry> one;
        one.emplace_back(std::move(id), std::move(cfg));
        return add_nodes(self, std::move(one));
      },
      [=](remove_node_atom, const std::string& id) -> caf::result<ok_atom> {
        auto& st = self->state;
        auto rp = self->make_response_promise<ok_atom>();
        if (st.shutting_down) {
          rp.deliver(shutting_down_error());
          return rp;
        }
        auto it = st.nodes.find(id);
        if (it == st.nodes.end()) {
          rp.deliver(not_found(id));
          return rp;
        }
        auto sup = it->second.supervisor;
        st.nodes.erase(it);
        st.probe_round_left.erase(id);
        remove_from_order(st, id);
        auto changed = st.routes.remove(id);
        publish_routes(self);
        for (auto& other : changed)
          publish_role(self, other);
        self->demonitor(sup.address());
        auto grace = st.opts.shutdown_timeout;
        auto given = std::make_shared<bool>(false);
        auto key = owe(st, rp, given);
        auto removed = [=]() mutable {
          broadcast(self, node_event{event::node_removed, id, {}, {}, {}});
          if (*given) return;
          *given = true;
          self->state.owed.erase(key);
          rp.deliver(ok_atom::value);
        };
        self->request(sup, grace + guard_margin, stop_atom::value, caf::timespan{grace})
            .then(
                [=](ok_atom) mutable {
                  log::info("node {}: removed", id);
                  removed();
                },
                [=](caf::error&) mutable {
                  self->send_exit(sup, caf::exit_reason::kill);
                  removed();
                });
        return rp;
      },
      [=](query_atom, const std::string& id, std::string& sql, std::vector<param>& params,
          caf::timespan timeout) -> caf::result<result_set> {
        auto sup = supervisor_of(self, id);
        if (!sup) return std::move(sup.error());
        if (auto problem = detail::transaction_statement_problem(sql); !problem.empty())
          return detail::node_error(errc::invalid_argument, id, problem);
        auto& st = self->state;
        if (timeout.count() <= 0) timeout = st.opts.query_timeout;
        auto job = make_query_job(std::move(sql), std::move(params), timeout);
        return self->delegate(*sup, query_atom::value, std::move(job));
      },
      [=](query_atom, route& r, std::string& sql, std::vector<param>& params,
          caf::timespan timeout) -> caf::result<result_set> {
        auto& st = self->state;
        auto rp = self->make_response_promise<result_set>();
        if (st.shutting_down) {
          rp.deliver(shutting_down_error());
          return rp;
        }
        if (auto problem = detail::transaction_statement_problem(sql); !problem.empty()) {
          rp.deliver(make_error(errc::invalid_argument, problem));
          return rp;
        }
        if (timeout.count() <= 0) timeout = st.opts.query_timeout;
        auto job = make_query_job(std::move(sql), std::move(params), timeout);
        auto picked = pick_node(self, r);
        if (picked.node) {
          dispatch_routed(self, *picked.node, r, std::move(job), rp);
        } else if (r.to == target::primary && picked.code == errc::no_eligible_node &&
                   st.opts.primary_wait.count() > 0) {
          auto give_up =
              std::min(steady_now_ns() + duration_cast<nanoseconds>(st.opts.primary_wait).count(),
                       job.deadline_ns);
          st.waiting_for_primary.push_back(pending_primary{r, std::move(job), rp, give_up});
          schedule_sweep(self);
        } else {
          rp.deliver(make_error(picked.code, picked.message));
        }
        return rp;
      },
      [=](probe_atom, const std::string& id, probe_report& rep) {
        auto& st = self->state;
        auto it = st.nodes.find(id);
        if (it == st.nodes.end() || caf::actor_cast<caf::actor_addr>(self->current_sender()) !=
                                        it->second.supervisor.address())
          return; // from a node removed meanwhile
        on_probe_report(self, id, rep);
      },
      [=](failover_atom, const std::string& id) {
        auto& st = self->state;
        auto it = st.nodes.find(id);
        if (it == st.nodes.end() || caf::actor_cast<caf::actor_addr>(self->current_sender()) !=
                                        it->second.supervisor.address())
          return; // from a node removed meanwhile
        on_failover_sign(self, id);
      },
      [=](query_all_atom, std::string& sql, std::vector<param>& params, caf::timespan timeout,
          bool healthy_only) -> caf::result<std::vector<node_result_set>> {
        auto& st = self->state;
        auto rp = self->make_response_promise<std::vector<node_result_set>>();
        if (st.shutting_down) {
          rp.deliver(shutting_down_error());
          return rp;
        }
        if (auto problem = detail::transaction_statement_problem(sql); !problem.empty()) {
          rp.deliver(make_error(errc::invalid_argument, problem));
          return rp;
        }
        if (timeout.count() <= 0) timeout = st.opts.query_timeout;
        std::vector<std::pair<std::string, node_supervisor_actor>> targets;
        for (auto& id : st.order) {
          auto& n = st.nodes.at(id);
          if (!healthy_only || n.health.status == health_state::healthy)
            targets.emplace_back(id, n.supervisor);
        }
        if (targets.empty()) {
          rp.deliver(std::vector<node_result_set>{});
          return rp;
        }
        auto agg = std::make_shared<fan_out>();
        agg->rp = rp;
        agg->results.resize(targets.size());
        agg->answered.resize(targets.size(), false);
        agg->remaining = targets.size();
        auto job = make_query_job(std::move(sql), std::move(params), timeout);
        agg->give_up_ns = job.deadline_ns + duration_cast<nanoseconds>(guard_margin).count();
        auto key = ++st.next_fan_out;
        st.fan_outs.emplace(key, agg);
        schedule_sweep(self);
        for (std::size_t i = 0; i < targets.size(); ++i) {
          auto& [id, sup] = targets[i];
          agg->results[i].node_id = id;
          auto node_id = id;
          self->request(sup, caf::infinite, query_atom::value, job)
              .then(
                  [=](result_set& rs) mutable {
                    auto& entry = agg->results[i];
                    entry.success = true;
                    entry.data = std::move(rs);
                    fan_out_answered(self, key, *agg, i);
                  },
                  [=](caf::error& err) mutable {
                    auto& entry = agg->results[i];
                    entry.success = false;
                    entry.error = to_error_info(err, "node " + node_id);
                    fan_out_answered(self, key, *agg, i);
                  });
        }
        return rp;
      },
      [=](caf::get_atom, nodes_atom) -> caf::result<std::vector<node_info>> {
        // Live numbers from every supervisor; the last published snapshot
        // stands in for a node that does not answer within a second.
        auto& st = self->state;
        auto rp = self->make_response_promise<std::vector<node_info>>();
        struct gather {
          std::vector<node_info> out;
          std::size_t remaining;
        };
        auto g = std::make_shared<gather>();
        g->remaining = st.order.size();
        for (auto& id : st.order)
          g->out.push_back(info_of(st, id, st.nodes.at(id)));
        if (g->remaining == 0) {
          rp.deliver(std::move(g->out));
          return rp;
        }
        auto given = std::make_shared<bool>(false);
        auto key = owe(st, rp, given);
        for (std::size_t i = 0; i < st.order.size(); ++i) {
          auto done = [=]() mutable {
            if (--g->remaining != 0 || *given) return;
            *given = true;
            self->state.owed.erase(key);
            rp.deliver(std::move(g->out));
          };
          self->request(st.nodes.at(st.order[i]).supervisor, seconds{1}, caf::get_atom::value)
              .then(
                  [=](node_info& live) mutable {
                    live.health = with_view(self->state, live.id, std::move(live.health));
                    g->out[i] = std::move(live);
                    done();
                  },
                  [=](caf::error&) mutable { done(); });
        }
        return rp;
      },
      [=](caf::get_atom, node_atom, const std::string& id) -> caf::result<node_info> {
        auto& st = self->state;
        auto rp = self->make_response_promise<node_info>();
        auto it = st.nodes.find(id);
        if (it == st.nodes.end()) {
          rp.deliver(not_found(id));
          return rp;
        }
        auto cached = info_of(st, id, it->second);
        auto given = std::make_shared<bool>(false);
        auto key = owe(st, rp, given);
        auto answer = [=](node_info info) mutable {
          if (*given) return;
          *given = true;
          self->state.owed.erase(key);
          rp.deliver(std::move(info));
        };
        self->request(it->second.supervisor, seconds{1}, caf::get_atom::value)
            .then(
                [=](node_info& live) mutable {
                  live.health = with_view(self->state, live.id, std::move(live.health));
                  answer(std::move(live));
                },
                [=](caf::error&) mutable { answer(cached); });
        return rp;
      },
      [=](subscribe_atom, event_subscriber_actor& sub) -> ok_atom {
        auto& subs = self->state.subscribers;
        if (std::find(subs.begin(), subs.end(), sub) == subs.end()) {
          self->monitor(sub);
          subs.push_back(std::move(sub));
        }
        return ok_atom::value;
      },
      [=](unsubscribe_atom, const event_subscriber_actor& sub) -> ok_atom {
        auto& subs = self->state.subscribers;
        auto it = std::find(subs.begin(), subs.end(), sub);
        if (it != subs.end()) {
          self->demonitor(it->address());
          subs.erase(it);
        }
        return ok_atom::value;
      },
      [=](shutdown_atom) -> caf::result<ok_atom> {
        auto& st = self->state;
        auto rp = self->make_response_promise<ok_atom>();
        st.shutdown_waiters.push_back(rp);
        if (st.shutting_down) return rp; // a second call waits for the same end
        st.shutting_down = true;
        publish_routes(self); // routed facade calls go to the manager, which answers shutting_down
        for (auto& w : st.waiting_for_primary)
          w.rp.deliver(shutting_down_error());
        st.waiting_for_primary.clear();
        log::info("shutting down ({} nodes, up to {} ms)", st.order.size(),
                  st.opts.shutdown_timeout.count());
        auto remaining = std::make_shared<std::size_t>(st.order.size());
        auto finish = [self]() {
          for (auto& waiter : self->state.shutdown_waiters)
            waiter.deliver(ok_atom::value);
          self->state.shutdown_waiters.clear();
          self->quit();
        };
        if (*remaining == 0) {
          finish();
          return rp;
        }
        auto grace = st.opts.shutdown_timeout;
        for (auto& id : st.order) {
          auto sup = st.nodes.at(id).supervisor;
          self->demonitor(sup.address());
          auto one_done = [=]() mutable {
            broadcast(self, node_event{event::node_removed, id, {}, {}, {}});
            if (--*remaining == 0) finish();
          };
          self->request(sup, grace + guard_margin, stop_atom::value, caf::timespan{grace})
              .then([=](ok_atom) mutable { one_done(); },
                    [=](caf::error&) mutable {
                      self->send_exit(sup, caf::exit_reason::kill);
                      one_done();
                    });
        }
        return rp;
      },
      [=](version_atom) -> std::uint32_t { return protocol_version; },
      [=](publish_atom, node_event& ev) {
        auto& st = self->state;
        auto it = st.nodes.find(ev.node_id);
        if (it == st.nodes.end() || caf::actor_cast<caf::actor_addr>(self->current_sender()) !=
                                        it->second.supervisor.address())
          return; // from a node removed meanwhile
        bool republish = false;
        if (ev.health) {
          // query_healthy's targets changed: the facade's fan-out reads them.
          auto healthy = [](const health_status& h) { return h.status == health_state::healthy; };
          republish = healthy(it->second.health) != healthy(*ev.health);
          it->second.health = *ev.health;
        }
        if (ev.stats) {
          it->second.stats = *ev.stats;
          if (!republish) load_changed(self, ev.node_id);
        }
        if (republish) publish_routes(self);
        broadcast(self, ev);
      },
      [=](tick_atom, std::uint64_t) { sweep_fan_outs(self); },
      [=](stream_atom, const std::string& id, std::string& sql, std::vector<param>& params,
          stream_request& spec, stream_sink_actor& sink) -> caf::result<stream_control_actor> {
        auto job = make_stream_job(self->state.opts, std::move(sql), std::move(params), spec,
                                   std::move(sink));
        if (!job) return std::move(job.error());
        auto sup = supervisor_of(self, id);
        if (!sup) return std::move(sup.error());
        return self->delegate(*sup, stream_atom::value, std::move(*job));
      },
      // transactions
      [=](begin_atom, const std::string& id,
          transaction_options& o) -> caf::result<transaction_session> {
        if (auto err = check_transaction_options(o)) return err;
        return begin_on(self, id, o);
      },
      [=](begin_atom, route& r, transaction_options& o) -> caf::result<transaction_session> {
        if (self->state.shutting_down) return shutting_down_error();
        if (auto err = check_transaction_options(o)) return err;
        auto picked = pick_node(self, r);
        if (!picked.node) return make_error(picked.code, picked.message);
        return begin_on(self, *picked.node, o);
      },
      [=](route_atom, const std::string& id) -> caf::result<node_query_actor> {
        auto sup = supervisor_of(self, id);
        if (!sup) return std::move(sup.error());
        return caf::actor_cast<node_query_actor>(*sup);
      },
      // The actor API's fast path: the node's handle, for local requesters
      // only (a remote client's requests to it would not be failed at once
      // when the connection drops: remote_link tracks requests to the manager).
      [=](route_atom, node_atom, const std::string& id) -> caf::result<node_api_actor> {
        auto sup = supervisor_of(self, id);
        if (!sup) return std::move(sup.error());
        auto sender = self->current_sender();
        if (sender && sender->node() != self->node())
          return detail::node_error(errc::invalid_argument, id,
                                    "node handles are local only: a remote client sends "
                                    "(query_atom, node id, ...) to the manager");
        return caf::actor_cast<node_api_actor>(*sup);
      },
  };
}

} // namespace

caf::expected<manager_api_actor> spawn_manager(caf::actor_system& sys, manager_options opts) {
  return spawn_manager(sys, opts, nullptr);
}

caf::expected<manager_api_actor> spawn_manager(caf::actor_system& sys, manager_options opts,
                                               std::shared_ptr<detail::routing_board> board) {
  if (auto problem = validate(opts)) return to_caf_error(*problem);
  // Started here, not in the actor: a reactor that cannot start (no file
  // descriptor or thread left) is this call's error, not a manager that died
  // at once and answers every request with "shutting down".
  std::shared_ptr<detail::reactor> io;
  try {
    io = std::make_shared<detail::reactor>(sys, opts.effective_inline_execution());
  } catch (const std::exception& e) {
    return make_error(errc::connection_failed,
                      std::string{"pgcm could not start its I/O reactor: "} + e.what());
  }
  manager_actor hdl = sys.spawn(cluster_manager, opts, std::move(io), std::move(board));
  return caf::actor_cast<manager_api_actor>(hdl);
}

} // namespace pgcm
