#pragma once

// state_store_actor: an event subscriber that keeps a live cluster_snapshot of one
// manager (the spec's Zustand store). Blocking code uses the pgcm::state_store
// class (pgcm/state_store.hpp) instead, which wraps this actor.
//
// Owns: the snapshot (nodes in the manager's order: config without
// password, health, pool statistics, connection state, latency history).
// At start it subscribes to the manager and asks for its nodes; it then
// applies every event, and every `refresh_interval` asks the manager for
// fresh numbers (latency and failure counts change without events).
// Answers (get_atom) with the snapshot and (refresh_atom) with ok_atom
// once a refresh it starts then is applied; after every change it calls the
// `on_change` callback (on the actor's thread) with the new snapshot.
// When the manager goes down (shut down, or a remote link lost) it publishes
// a last snapshot with manager_alive = false and quits.
//
//        start ──subscribe + refresh──▶ live ◀──event / refresh reply──┐
//                                        │  └─────────────────────────┘
//                                  manager down
//                                        ▼
//                          manager_alive = false, quit

#include <functional>
#include <memory>

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "pgcm/messages/inspect.hpp"
#include "pgcm/messages/protocol.hpp"
#include "pgcm/state_store.hpp"

namespace pgcm {

/// Asks a state store to refresh now; it answers once the fresh numbers are applied.
using refresh_atom = caf::atom_constant<caf::atom("pgcm_refr")>;

using state_store_actor =
    event_subscriber_actor::extend<caf::replies_to<caf::get_atom>::with<cluster_snapshot>,
                                   caf::replies_to<refresh_atom>::with<ok_atom>,
                                   caf::reacts_to<tick_atom, std::uint64_t>>;

/// Receives each new snapshot (version increased), on the store's thread.
using snapshot_callback = std::function<void(std::shared_ptr<const cluster_snapshot>)>;

/// Spawns a state store attached to `manager`.
state_store_actor spawn_state_store(caf::actor_system& sys, manager_api_actor manager,
                                    state_store_options opts, snapshot_callback on_change = {});

// -- inspect (local messages only; not registered for remote use) --------------

namespace detail {

inline std::int64_t to_ns(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

inline std::chrono::system_clock::time_point from_ns(std::int64_t ns) {
  return std::chrono::system_clock::time_point{
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::nanoseconds{ns})};
}

} // namespace detail

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, latency_sample& x) {
  auto at = detail::to_ns(x.at);
  auto us = static_cast<std::int64_t>(x.latency.count());
  auto load = caf::meta::load_callback([&]() -> caf::error {
    x.at = detail::from_ns(at);
    x.latency = microseconds{us};
    return caf::none;
  });
  return f(caf::meta::type_name("pgcm::latency_sample"), at, us, x.ok, load);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, node_state& x) {
  auto connected = detail::opt(x.connected);
  auto disconnect_error = detail::opt(x.disconnect_error);
  return f(caf::meta::type_name("pgcm::node_state"), x.info, connected, disconnect_error,
           x.history);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cluster_snapshot& x) {
  auto updated = detail::to_ns(x.updated);
  auto load = caf::meta::load_callback([&]() -> caf::error {
    x.updated = detail::from_ns(updated);
    return caf::none;
  });
  return f(caf::meta::type_name("pgcm::cluster_snapshot"), x.version, x.nodes, x.manager_alive,
           updated, load);
}

} // namespace pgcm
