#pragma once

// transaction_session: one transaction on one pinned connection of a node.
//
// Owns: nothing but the pin. It asks the node's supervisor for a connection
// of its own (pin_atom); until it gives it back (unpin_atom) nothing else is
// sent on it, and it counts as in use in the pool stats. Statements go from
// the session straight to that connection's worker, in order.
// Answers (transaction_session_actor, messages/protocol.hpp):
//   (query_atom, sql, params) -> result_set   the first one travels behind
//       `BEGIN ISOLATION LEVEL ...` in the same round trip (pipelined)
//   (commit_atom) -> lsn   COMMIT, then the WAL position, in one round trip
//   (rollback_atom) -> ok_atom
//
//   spawn --pin--> [pinning] --granted--> [open] --commit/rollback--> [ending] --> quits
//      |               |                     | deadline / owner down / statement timed out
//      |               |                     v
//      |               |                 [ending] (ROLLBACK in the background)
//      +--pin failed---+---------------------------------------------------------> quits
//
// Guarantees: every request gets exactly one answer. The transaction's
// deadline covers it whole: a statement running when it passes is cancelled
// on the server (by its worker) and answered query_timeout, then the session
// rolls back; an idle session past its deadline rolls back. A lost
// connection is connection_failed (during COMMIT: "outcome unknown"). When
// the owner (the requester of begin_atom) dies, the session rolls back and
// quits. The connection is given back after COMMIT / ROLLBACK; a connection
// not idle afterwards is closed by its worker (never reused).

#include <string>

#include "pgcm/messages/internal_protocol.hpp"

namespace pgcm {

struct session_config {
  node_supervisor_actor supervisor;
  std::string node_id;
  transaction_options opts;
  /// The transaction's whole time budget (from begin).
  caf::timespan timeout{};
  /// Who ends the session when it dies (may be null: no monitor).
  caf::strong_actor_ptr owner;
};

transaction_session_actor spawn_transaction_session(caf::actor_system& sys, session_config cfg);

/// `BEGIN ISOLATION LEVEL ...` for `opts`.
std::string begin_statement(const transaction_options& opts);

} // namespace pgcm
