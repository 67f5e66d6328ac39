#pragma once

// pgcm's public message protocol: the manager's typed interface
// (manager_api_actor) and what event subscribers handle. This is what
// actor-based applications and remote clients use; the messages a manager
// exchanges with its node supervisors, workers and probes are internal
// (messages/internal_protocol.hpp, not installed).
//
// clang-format off
// Manager protocol (every request gets exactly one reply, a value or a
// caf::error of category "pgcm"; see messages/error.hpp):
//   (initialize_atom, vector<node_entry>)           -> ok_atom   all validated first, then connected in parallel
//   (add_node_atom, id, node_config)                -> ok_atom   duplicate_node / invalid_config
//   (remove_node_atom, id)                          -> ok_atom   node_not_found
//   (query_atom, id, sql, params, timeout)          -> result_set        timeout 0 = query_timeout
//   (query_atom, route, sql, params, timeout)       -> result_set        no_eligible_node / split_brain
//   (query_all_atom, sql, params, timeout, healthy) -> vector<node_result_set>  one entry per node
//   (get_atom, nodes_atom)                          -> vector<node_info>
//   (get_atom, node_atom, id)                       -> node_info          node_not_found
//   (subscribe_atom, subscriber)                    -> ok_atom   subscriber gets (event_atom, node_event)
//   (unsubscribe_atom, subscriber)                  -> ok_atom
//   (shutdown_atom)                                 -> ok_atom   after shutdown_timeout at the latest
//   (version_atom)                                  -> uint32    protocol_version
//   (stream_atom, id, sql, params, stream_request, stream_sink_actor)
//                                                   -> stream_control_actor  see "Row streaming" below
//   (begin_atom, id, transaction_options)           -> transaction_session   pins a connection
//   (begin_atom, route, transaction_options)        -> transaction_session   node picked by the route
//   (route_atom, node_atom, id)                     -> node_api_actor    the node's own handle (local only)
//
// Node handle protocol (node_api_actor, from (route_atom, node_atom, id)): the
// fast path for actor applications, one hop less than through the manager:
//   (query_atom, sql, params, timeout)  -> result_set   as (query_atom, id, ...) to the manager
// A removed node's handle answers shutting_down (while it drains) and then
// CAF's request_receiver_down, as does a handle whose node supervisor was
// restarted: ask the manager again (it answers node_not_found once the node
// is gone). Only local requesters get a handle (a remote one gets
// invalid_argument): remote clients send queries to the manager.
//
// Transaction session protocol (transaction_session_actor, from begin_atom):
//   (query_atom, sql, params)   -> result_set   in order, inside the transaction
//   (commit_atom)               -> lsn          WAL position at/after the commit (0 when read_only)
//   (rollback_atom)             -> ok_atom
// The session rolls back and frees its connection when its owner (the
// requester of begin_atom) dies, when the transaction's deadline
// (transaction_options::timeout, default query_timeout) passes, or at
// shutdown; later messages are answered with the error that ended it.
// clang-format on

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/timespan.hpp>
#include <caf/typed_actor.hpp>

#include "pgcm/messages/atoms.hpp"
#include "pgcm/messages/inspect.hpp"
#include "pgcm/transaction.hpp"

namespace pgcm {

/// Bumped whenever a message of the public protocol changes shape.
/// 2: routed queries, replication facts in health_status, result_set node_id /
/// commit_lsn, the query-duration histogram in pool_stats.
/// 3: row streaming (stream_atom) and transactions (begin_atom, transaction_session_actor).
/// 4: node handles ((route_atom, node_atom, id) -> node_api_actor).
constexpr std::uint32_t protocol_version = 4;

using node_entry = std::pair<std::string, node_config>;
using node_result_set = basic_node_result<result_set>;

/// What an event subscriber handles.
using event_subscriber_actor = caf::typed_actor<caf::reacts_to<event_atom, node_event>>;

// -- Row streaming (issue 12, part S) ------------------------------------------
//
// (stream_atom, node id, sql, params, stream_request, sink) runs `sql` on a
// connection of its own in single-row mode. The reply is the stream's control
// handle once the statement was sent, or an error (then nothing else
// follows). After a control handle, the sink gets (stream_rows_atom, id,
// result_set) chunks, one per credit, each of `chunk_rows` rows except the
// last, then exactly one (stream_end_atom, id, rows, error): `rows` delivered
// in all, `error` empty on success. Credits: `stream_request::credit` to
// begin with, then (credit_atom, n) to the control handle for n more chunks.
// Without credit the stream stops reading its socket (TCP back pressure slows
// the server) and holds at most one full chunk plus the one being filled.
// (cancel_atom) to the control handle, or the sink's death, cancels the
// statement on the server; a cancelled stream still ends with
// (stream_end_atom, ...) (query_failed, SQLSTATE 57014) unless the sink died.
// The deadline (`timeout`, 0 = query_timeout) covers the whole stream.

/// How a stream is to run.
struct stream_request {
  /// Echoed in every message to the sink (tells a sink's streams apart).
  std::uint64_t id = 0;
  /// Rows per chunk (1 .. 1,000,000).
  std::uint32_t chunk_rows = 1000;
  /// Chunks the sink is ready for at the start (at least 1).
  std::uint32_t credit = 1;
  /// The deadline of the whole stream, from the request on; 0 = query_timeout.
  caf::timespan timeout{0};
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stream_request& x) {
  return f(caf::meta::type_name("pgcm::stream_request"), x.id, x.chunk_rows, x.credit, x.timeout);
}

/// Who receives a stream's rows.
using stream_sink_actor =
    caf::typed_actor<caf::reacts_to<stream_rows_atom, std::uint64_t, result_set>,
                     caf::reacts_to<stream_end_atom, std::uint64_t, std::uint64_t, caf::error>>;

/// A running stream: grant credits or cancel it.
using stream_control_actor =
    caf::typed_actor<caf::reacts_to<credit_atom, std::uint32_t>, caf::reacts_to<cancel_atom>>;

// -- transactions (issue 12, part T) -----------------------------------------

/// One open transaction on one pinned connection (see the table above).
using transaction_session_actor =
    caf::typed_actor<caf::replies_to<query_atom, std::string, std::vector<param>>::with<result_set>,
                     caf::replies_to<commit_atom>::with<lsn>,
                     caf::replies_to<rollback_atom>::with<ok_atom>>;

/// What begin_atom answers: the session and the node it runs on.
struct transaction_session {
  transaction_session_actor session;
  std::string node_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, transaction_session& x) {
  return f(caf::meta::type_name("pgcm::transaction_session"), x.session, x.node_id);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, transaction_options& x) {
  auto timeout = detail::opt(x.timeout);
  return f(caf::meta::type_name("pgcm::transaction_options"), x.level, x.read_only, x.deferrable,
           x.retries, timeout);
}

// -- end of transactions ------------------------------------------------------

/// One node's query handle (see "Node handle protocol" above): what
/// `(route_atom, node_atom, id)` answers.
using node_api_actor = caf::typed_actor<
    caf::replies_to<query_atom, std::string, std::vector<param>, caf::timespan>::with<result_set>>;

/// The manager's public interface: what applications and remote clients may send.
// clang-format off
using manager_api_actor =
    caf::typed_actor<caf::replies_to<initialize_atom, std::vector<node_entry>>::with<ok_atom>,
                     caf::replies_to<add_node_atom, std::string, node_config>::with<ok_atom>,
                     caf::replies_to<remove_node_atom, std::string>::with<ok_atom>,
                     caf::replies_to<query_atom, std::string, std::string, std::vector<param>,
                                     caf::timespan>::with<result_set>,
                     caf::replies_to<query_atom, route, std::string, std::vector<param>,
                                     caf::timespan>::with<result_set>,
                     caf::replies_to<query_all_atom, std::string, std::vector<param>, caf::timespan,
                                     bool>::with<std::vector<node_result_set>>,
                     caf::replies_to<caf::get_atom, nodes_atom>::with<std::vector<node_info>>,
                     caf::replies_to<caf::get_atom, node_atom, std::string>::with<node_info>,
                     caf::replies_to<subscribe_atom, event_subscriber_actor>::with<ok_atom>,
                     caf::replies_to<unsubscribe_atom, event_subscriber_actor>::with<ok_atom>,
                     caf::replies_to<shutdown_atom>::with<ok_atom>,
                     caf::replies_to<version_atom>::with<std::uint32_t>,
                     // Row streaming (issue 12, part S).
                     caf::replies_to<stream_atom, std::string, std::string, std::vector<param>,
                                     stream_request, stream_sink_actor>::with<stream_control_actor>,
                     // Transactions (issue 12, part T).
                     caf::replies_to<begin_atom, std::string, transaction_options>::with<transaction_session>,
                     caf::replies_to<begin_atom, route, transaction_options>::with<transaction_session>,
                     // Node handles: the fast path of the actor API.
                     caf::replies_to<route_atom, node_atom, std::string>::with<node_api_actor>>;
// clang-format on

/// Registers every pgcm message type on `cfg` (both sides of a remote
/// connection must call it) and pgcm's error renderer.
void register_types(caf::actor_system_config& cfg);

} // namespace pgcm
