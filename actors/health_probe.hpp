#pragma once

// health_probe: probes one node on a connection of its own.
//
// Owns: one connection_worker (respawned after a failure).
// Every `interval` (with up to 10 % jitter, first probe at once) it runs
// `SELECT pg_is_in_recovery()` with a deadline of `timeout` covering connect
// and query, and sends (probe_atom, probe_result) to its node supervisor:
// ok with latency and role, or the error. A silent host costs one deadline
// per probe (pgcm enforces it), never the kernel's TCP timeout. At most one
// probe runs at a time.

#include <chrono>
#include <memory>
#include <string>

#include "pgcm/messages/internal_protocol.hpp"

namespace pgcm::detail {
class reactor;
struct conn_params;
} // namespace pgcm::detail

namespace pgcm {

struct probe_config {
  std::string node_id;
  std::shared_ptr<const detail::conn_params> params;
  std::shared_ptr<detail::reactor> io;
  std::chrono::milliseconds interval{5000};
  std::chrono::milliseconds timeout{5000};
};

health_probe_actor spawn_health_probe(caf::actor_system& sys, node_supervisor_actor supervisor,
                                      probe_config cfg);

} // namespace pgcm
