#pragma once

// The explicit marker of pgcm's core actors (docs/threading.md I5): the
// manager, node supervisors, connection workers and health probes are
// spawned with this base, and only actors with it run on an inline_unit.
// An application actor cannot carry it by accident (a name cannot opt in).
//
//   using self_ptr = detail::core_pointer<node_supervisor_actor, supervisor_data>;

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

namespace pgcm::detail {

/// What inline_unit::exec_later looks for.
class inline_capable {
public:
  virtual ~inline_capable() = default;
};

/// `Base` (a typed or dynamic event-based actor) marked as a core actor.
template <class Base> class core_actor : public Base, public inline_capable {
public:
  using Base::Base;
};

/// The `self` pointer of a core actor with handle type `Handle` and state `State`.
template <class Handle, class State>
using core_pointer = caf::stateful_actor<State, core_actor<typename Handle::base>>*;

/// The same for a dynamically typed actor (tests).
template <class State>
using dynamic_core_pointer = caf::stateful_actor<State, core_actor<caf::event_based_actor>>*;

} // namespace pgcm::detail
