#pragma once

// pgcm's atoms. They live in namespace pgcm so that `using namespace caf`
// elsewhere cannot make them ambiguous with CAF's own (caf::get_atom, ...).
// At most 10 characters, only [0-9A-Za-z_ ].

#include <caf/atom.hpp>

namespace pgcm {

// Public protocol of the manager actor.
using initialize_atom = caf::atom_constant<caf::atom("pgcm_init")>;
using add_node_atom = caf::atom_constant<caf::atom("pgcm_add")>;
using remove_node_atom = caf::atom_constant<caf::atom("pgcm_rm")>;
using query_atom = caf::atom_constant<caf::atom("pgcm_query")>;
using query_all_atom = caf::atom_constant<caf::atom("pgcm_qall")>;
using nodes_atom = caf::atom_constant<caf::atom("pgcm_nodes")>;
using node_atom = caf::atom_constant<caf::atom("pgcm_node")>;
using subscribe_atom = caf::atom_constant<caf::atom("pgcm_sub")>;
using unsubscribe_atom = caf::atom_constant<caf::atom("pgcm_unsub")>;
using shutdown_atom = caf::atom_constant<caf::atom("pgcm_down")>;
using event_atom = caf::atom_constant<caf::atom("pgcm_event")>;
using ok_atom = caf::atom_constant<caf::atom("pgcm_ok")>;
using version_atom = caf::atom_constant<caf::atom("pgcm_ver")>;

// -- transactions (issue 12, part T): begin on the manager, then the session --
using begin_atom = caf::atom_constant<caf::atom("pgcm_begin")>;
using commit_atom = caf::atom_constant<caf::atom("pgcm_commt")>;
using rollback_atom = caf::atom_constant<caf::atom("pgcm_rollb")>;
// -- end of transactions --

// Internal protocol between manager, node supervisors, workers and probes.
using execute_atom = caf::atom_constant<caf::atom("pgcm_exec")>;
using io_atom = caf::atom_constant<caf::atom("pgcm_io")>;
using tick_atom = caf::atom_constant<caf::atom("pgcm_tick")>;
using report_atom = caf::atom_constant<caf::atom("pgcm_wrep")>;
using drain_atom = caf::atom_constant<caf::atom("pgcm_drain")>;
using probe_atom = caf::atom_constant<caf::atom("pgcm_probe")>;
using start_atom = caf::atom_constant<caf::atom("pgcm_start")>;
using stop_atom = caf::atom_constant<caf::atom("pgcm_stop")>;
using publish_atom = caf::atom_constant<caf::atom("pgcm_pub")>;
using resolved_atom = caf::atom_constant<caf::atom("pgcm_dns")>;
/// Also public: (route_atom, node_atom, id) asks the manager for a node handle.
using route_atom = caf::atom_constant<caf::atom("pgcm_route")>;
/// A sign that the primary may have changed (issue 10): probe every node now.
using failover_atom = caf::atom_constant<caf::atom("pgcm_fover")>;

// Row streaming (issue 12, part S): public protocol (messages/protocol.hpp).
using stream_atom = caf::atom_constant<caf::atom("pgcm_strm")>;
using stream_rows_atom = caf::atom_constant<caf::atom("pgcm_srows")>;
using stream_end_atom = caf::atom_constant<caf::atom("pgcm_send")>;
using credit_atom = caf::atom_constant<caf::atom("pgcm_cred")>;
using cancel_atom = caf::atom_constant<caf::atom("pgcm_cncl")>;

/// A leased connection comes back to its worker, or leased queries were counted (supervisor).
using lease_atom = caf::atom_constant<caf::atom("pgcm_lease")>;

// -- transactions (internal): a session pins one connection of a node --
using pin_atom = caf::atom_constant<caf::atom("pgcm_pin")>;
using unpin_atom = caf::atom_constant<caf::atom("pgcm_unpin")>;
// -- end of transactions --

} // namespace pgcm
