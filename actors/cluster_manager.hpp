#pragma once

// cluster_manager: the manager actor. Actor-based applications talk to it
// directly (see messages/protocol.hpp for the protocol); the blocking facade
// pgcm::connection_manager wraps it.
//
// Owns: one node_supervisor per node, the subscriber list, and the reactor
// thread that drives every libpq socket of its nodes.
// Routes (query_atom) to the node's supervisor (which answers the requester
// directly), fans (query_all_atom) out to every (healthy) node and aggregates
// one entry per node: a slow or dead node yields its own error entry by the
// deadline and never delays the others beyond it.
// Publishes node events to subscribers (monitored; a dead one is dropped).
// Shutdown: new requests answer shutting_down; every node drains within
// `shutdown_timeout`, is then cancelled and closed; the reply comes within
// shutdown_timeout + 1 s even when nodes hang; then the actor quits.
// A node supervisor that dies unexpectedly is restarted with its config.

#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "pgcm/messages/protocol.hpp"

namespace pgcm {

/// Spawns a manager in `sys` (whose config must have seen
/// pgcm::register_types). Returns invalid_config for bad options.
caf::expected<manager_api_actor> spawn_manager(caf::actor_system& sys, manager_options opts);

} // namespace pgcm
