#pragma once

// node_supervisor: one node of the cluster.
//
// Owns: its connection workers (the pool: `pool.min` opened at start and
// kept, grown on demand to `pool.max`) and its health probe.
// Answers:
//   (query_atom, query_job) -> result_set   routed to the least-loaded ready
//       connection (pipelined up to `pool.pipeline_depth` per connection),
//       else queued up to `pool.max_waiting` (then pool_exhausted) until a
//       connection frees up or the job's deadline passes (query_timeout).
//   (start_atom) -> ok_atom   once the first connection attempt and the first
//       probe have finished, whatever their outcome.
//   (stop_atom, grace) -> ok_atom   stops taking requests, answers the queued
//       ones with shutting_down, lets in-flight ones finish within `grace`,
//       then cancels and answers the rest, closes every connection and quits.
// Publishes node_event (connected, disconnected, health, pool_stats) to its
// manager with (publish_atom, node_event).
// Reconnects with exponential backoff (jitter, capped); while the node has no
// open connection, one attempt per backoff step, not one per pool slot, and
// requests fail fast with connection_failed instead of waiting. (Only the
// first start, before any attempt failed, opens `pool.min` at once.)
// Workers share their answer count with it (worker_counters): in-flight
// counts need no message per answer.
// The pool rules (dispatch, growth, backoff, replenish, drain) and the node's
// state live in src/pool_policy.hpp, a plain class this actor feeds events.

#include <memory>
#include <string>

#include "pgcm/messages/internal_protocol.hpp"

namespace pgcm::detail {
class reactor;
/// A steady clock in nanoseconds (as query_job::deadline_ns).
using steady_clock_fn = std::int64_t (*)();
} // namespace pgcm::detail

namespace pgcm {

std::int64_t steady_now_ns(); // connection_worker.hpp

/// `clock`: what the supervisor reads as now (tests pass a fake one).
node_supervisor_actor spawn_node_supervisor(caf::actor_system& sys, manager_actor manager,
                                            std::string node_id, node_config cfg,
                                            manager_options opts,
                                            std::shared_ptr<detail::reactor> io,
                                            detail::steady_clock_fn clock = &steady_now_ns);

} // namespace pgcm
