#include "pgcm/actors/state_store_actor.hpp"

#include <algorithm>
#include <map>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "log.hpp"
#include "tick_timer.hpp"

namespace pgcm {

namespace {

using namespace std::chrono;

/// Bound for one refresh: the manager answers within about a second even
/// when nodes hang.
constexpr auto refresh_timeout = seconds{3};

struct store_data {
  manager_api_actor manager;
  state_store_options opts;
  snapshot_callback on_change;
  cluster_snapshot snap;
  detail::tick_timer refresh_timer;
  /// Refreshes sent so far; a reply carries the number of its request.
  std::uint64_t refresh_seq = 0;
  bool refresh_in_flight = false;
  /// Node id -> refresh_seq when its node_added / node_removed event came:
  /// a refresh reply sent before that is older than the event.
  std::map<std::string, std::uint64_t> added_at;
  std::map<std::string, std::uint64_t> removed_at;

  static inline const char* name = "pgcm.state_store";
};

using self_ptr = state_store_actor::stateful_pointer<store_data>;

bool same_config(const node_config& x, const node_config& y) {
  return x.host == y.host && x.port == y.port && x.database == y.database && x.user == y.user &&
         x.ssl.enabled == y.ssl.enabled && x.ssl.reject_unauthorized == y.ssl.reject_unauthorized &&
         x.ssl.ca == y.ssl.ca && x.pool.min == y.pool.min && x.pool.max == y.pool.max &&
         x.pool.pipeline_depth == y.pool.pipeline_depth &&
         x.pool.max_waiting == y.pool.max_waiting &&
         x.pool.statement_cache == y.pool.statement_cache &&
         x.application_name == y.application_name;
}

node_state* find(store_data& st, const std::string& id) {
  for (auto& n : st.snap.nodes)
    if (n.info.id == id) return &n;
  return nullptr;
}

node_state& find_or_add(store_data& st, const std::string& id) {
  if (auto* n = find(st, id)) return *n;
  node_state n;
  n.info.id = id;
  n.info.pool.node_id = id;
  st.snap.nodes.push_back(std::move(n));
  return st.snap.nodes.back();
}

/// Records the probe behind `h` in the history; true if it was new.
bool add_sample(const store_data& st, node_state& n, const health_status& h) {
  if (h.last_check == system_clock::time_point{}) return false;
  if (!n.history.empty() && n.history.back().at >= h.last_check) return false;
  bool ok = h.consecutive_failures == 0;
  n.history.push_back(latency_sample{h.last_check, ok ? h.latency : microseconds{0}, ok});
  if (n.history.size() > st.opts.history_size)
    n.history.erase(n.history.begin(),
                    n.history.begin() +
                        static_cast<std::ptrdiff_t>(n.history.size() - st.opts.history_size));
  return true;
}

/// Replaces what a node_info says; true if anything changed.
bool apply_info(store_data& st, node_state& n, node_info info) {
  bool changed = !same_config(n.info.config, info.config) || !(n.info.health == info.health) ||
                 !(n.info.pool == info.pool);
  changed = add_sample(st, n, info.health) || changed;
  n.info = std::move(info);
  n.info.config.password.reset();
  return changed;
}

void commit(self_ptr self) {
  auto& st = self->state;
  ++st.snap.version;
  st.snap.updated = system_clock::now();
  if (st.on_change) {
    try {
      st.on_change(std::make_shared<const cluster_snapshot>(st.snap));
    } catch (const std::exception& e) {
      log::error("state store: change callback threw: {}", e.what());
    }
  }
}

bool apply_event(self_ptr self, const node_event& ev) {
  auto& st = self->state;
  switch (ev.type) {
  case event::node_added: {
    st.added_at[ev.node_id] = st.refresh_seq;
    st.removed_at.erase(ev.node_id);
    bool fresh = find(st, ev.node_id) == nullptr;
    find_or_add(st, ev.node_id);
    // Its config comes with its node_info; ask now rather than at the next refresh.
    auto id = ev.node_id;
    self->request(st.manager, refresh_timeout, caf::get_atom::value, node_atom::value, id)
        .then(
            [=](node_info& info) {
              if (auto* n = find(self->state, info.id);
                  n && apply_info(self->state, *n, std::move(info)))
                commit(self);
            },
            [](caf::error&) {});
    return fresh;
  }
  case event::node_removed: {
    st.removed_at[ev.node_id] = st.refresh_seq;
    st.added_at.erase(ev.node_id);
    auto& v = st.snap.nodes;
    auto it = std::remove_if(v.begin(), v.end(),
                             [&](const node_state& n) { return n.info.id == ev.node_id; });
    bool changed = it != v.end();
    v.erase(it, v.end());
    return changed;
  }
  case event::node_role: // role, timeline or conflict: the same health report
  case event::node_health: {
    if (!ev.health) return false;
    auto& n = find_or_add(st, ev.node_id);
    bool changed = !(n.info.health == *ev.health);
    changed = add_sample(st, n, *ev.health) || changed;
    n.info.health = *ev.health;
    return changed;
  }
  case event::pool_stats: {
    if (!ev.stats) return false;
    auto& n = find_or_add(st, ev.node_id);
    if (n.info.pool == *ev.stats) return false;
    n.info.pool = *ev.stats;
    return true;
  }
  case event::node_connected: {
    auto& n = find_or_add(st, ev.node_id);
    n.connected = true;
    n.disconnect_error.reset();
    return true;
  }
  case event::node_disconnected: {
    auto& n = find_or_add(st, ev.node_id);
    n.connected = false;
    n.disconnect_error = ev.error;
    return true;
  }
  }
  return false;
}

/// Applies the manager's node list as it was when request `seq` was sent.
bool apply_nodes(self_ptr self, std::vector<node_info>& infos, std::uint64_t seq) {
  auto& st = self->state;
  auto removed_since = [&](const std::string& id) {
    auto it = st.removed_at.find(id);
    return it != st.removed_at.end() && it->second >= seq;
  };
  auto added_since = [&](const std::string& id) {
    auto it = st.added_at.find(id);
    return it != st.added_at.end() && it->second >= seq;
  };
  bool changed = false;
  std::vector<node_state> next;
  next.reserve(infos.size());
  std::map<std::string, node_state> old;
  std::vector<std::string> old_order;
  for (auto& n : st.snap.nodes) {
    old_order.push_back(n.info.id);
    old.emplace(n.info.id, std::move(n));
  }
  for (auto& info : infos) {
    if (removed_since(info.id)) continue;
    node_state n;
    if (auto it = old.find(info.id); it != old.end()) {
      n = std::move(it->second);
      old.erase(it);
    } else {
      changed = true;
    }
    changed = apply_info(st, n, std::move(info)) || changed;
    next.push_back(std::move(n));
  }
  // Nodes the reply does not know: keep those added after it was asked for.
  for (auto& id : old_order) {
    auto it = old.find(id);
    if (it == old.end()) continue;
    if (added_since(id))
      next.push_back(std::move(it->second));
    else
      changed = true;
    old.erase(it);
  }
  st.snap.nodes = std::move(next);
  // Events older than this reply no longer matter.
  for (auto* m : {&st.added_at, &st.removed_at})
    for (auto it = m->begin(); it != m->end();)
      it = it->second < seq ? m->erase(it) : std::next(it);
  return changed;
}

/// Asks the manager for its nodes; `done` runs once the reply is applied
/// (or failed). Periodic refreshes (no `done`) never overlap.
void refresh(self_ptr self, std::function<void(caf::error)> done = {}) {
  auto& st = self->state;
  bool periodic = !done;
  if (periodic && st.refresh_in_flight) return;
  if (periodic) st.refresh_in_flight = true;
  auto seq = ++st.refresh_seq;
  self->request(st.manager, refresh_timeout, caf::get_atom::value, nodes_atom::value)
      .then(
          [=](std::vector<node_info>& infos) {
            if (periodic) self->state.refresh_in_flight = false;
            if (apply_nodes(self, infos, seq)) commit(self);
            if (done) done(caf::error{});
          },
          [=](caf::error& err) {
            if (periodic) self->state.refresh_in_flight = false;
            if (done) done(std::move(err));
          });
}

void schedule_refresh(self_ptr self) {
  auto& st = self->state;
  if (st.opts.refresh_interval.count() > 0)
    st.refresh_timer.arm_after(self, tick_atom::value, st.opts.refresh_interval);
}

state_store_actor::behavior_type store_behavior(self_ptr self, manager_api_actor manager,
                                                state_store_options opts,
                                                snapshot_callback on_change) {
  auto& st = self->state;
  st.manager = std::move(manager);
  st.opts = opts;
  st.on_change = std::move(on_change);
  self->monitor(st.manager);
  self->set_down_handler([=](const caf::down_msg& dm) {
    if (dm.source != self->state.manager.address()) return;
    self->state.snap.manager_alive = false;
    commit(self);
    self->quit();
  });
  state_store_actor me = self;
  // Subscribe first: every event after the reply to the refresh below is
  // newer than that reply (the manager handles both in this order).
  self->request(st.manager, refresh_timeout, subscribe_atom::value,
                caf::actor_cast<event_subscriber_actor>(me))
      .then([](ok_atom) {},
            [=](caf::error& err) {
              log::warn("state store: cannot subscribe to the manager: {}",
                        self->system().render(err));
            });
  refresh(self);
  schedule_refresh(self);
  return {
      [=](event_atom, const node_event& ev) {
        if (apply_event(self, ev)) commit(self);
      },
      [=](caf::get_atom) -> cluster_snapshot { return self->state.snap; },
      [=](refresh_atom) -> caf::result<ok_atom> {
        auto rp = self->make_response_promise<ok_atom>();
        refresh(self, [rp](caf::error err) mutable {
          if (err)
            rp.deliver(std::move(err));
          else
            rp.deliver(ok_atom::value);
        });
        return rp;
      },
      [=](tick_atom, std::uint64_t gen) {
        if (!self->state.refresh_timer.fired(gen)) return;
        refresh(self);
        schedule_refresh(self);
      },
  };
}

} // namespace

state_store_actor spawn_state_store(caf::actor_system& sys, manager_api_actor manager,
                                    state_store_options opts, snapshot_callback on_change) {
  return sys.spawn(store_behavior, std::move(manager), opts, std::move(on_change));
}

} // namespace pgcm
