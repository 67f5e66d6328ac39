#pragma once

// pgcm's CAF scheduler: CAF's work-sharing scheduler (one central queue, idle
// worker threads sleep: nothing polls) plus a one-job slot per worker thread.
// When an actor running on a worker makes another actor runnable (a message
// to an idle actor), that actor goes into the worker's slot and runs on the
// same thread as soon as the current one yields, instead of waking another
// thread through the central queue. A message hop between pgcm's actors
// (caller -> node supervisor -> connection worker -> caller) then costs no
// thread wake-up and no context switch; work arriving from outside the
// scheduler goes through the central queue (pgcm's reactor thread and facade
// callers run pgcm's core actors themselves: src/inline_unit.hpp). A slot's
// previous occupant moves to the central queue, and a worker
// serves the central queue first after 16 slot jobs in a row, so no actor
// waits behind a chain of hops. See the README (design, scheduler) for the
// measurements behind it.
//
// The blocking facade uses it for the actor system it creates. Code that
// brings its own actor system may opt in before creating it:
//
//   caf::actor_system_config cfg;
//   pgcm::register_types(cfg);
//   pgcm::use_pgcm_scheduler(cfg);
//   caf::actor_system sys{cfg};

#include <caf/actor_system_config.hpp>

namespace pgcm {

/// Loads pgcm's scheduler into `cfg` (replaces `scheduler.policy`; honors
/// `scheduler.max-threads`). Unless `scheduler.max-throughput` is set, sets
/// it to 64 messages per turn (CAF's default is unlimited), so that an actor
/// whose mailbox never runs dry still yields to the job in its thread's slot.
void use_pgcm_scheduler(caf::actor_system_config& cfg);

} // namespace pgcm
