#include "inline_unit.hpp"

#include "assert.hpp"
#include "core_actor.hpp"

#include <caf/actor_system.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>

namespace pgcm::detail {

inline_unit::inline_unit(caf::actor_system& sys)
    : caf::execution_unit(&sys), owner_(std::this_thread::get_id()) {
  // nop
}

inline_unit::~inline_unit() {
  run(0); // what is left goes to the scheduler: threading.md I3
  alive_ = 0;
}

namespace {

/// Only actors spawned with the core_actor marker run here (threading.md I4).
bool runs_inline(caf::resumable* job) {
  return dynamic_cast<inline_capable*>(job) != nullptr;
}

} // namespace

void inline_unit::exec_later(caf::resumable* job) {
  PGCM_ASSERT(alive_ == alive_tag, "I3: an inline unit is not used after its stack frame ended");
  PGCM_ASSERT(std::this_thread::get_id() == owner_,
              "I3/I4: only the thread whose stack holds an inline unit uses it");
  if (std::this_thread::get_id() == owner_ && runs_inline(job))
    jobs_.push_back(job);
  else // an application's actor (threading.md I5), or another thread (I3: never)
    system().scheduler().enqueue(job);
}

void inline_unit::run(int budget) {
  PGCM_ASSERT(std::this_thread::get_id() == owner_,
              "I3: only the thread whose stack holds an inline unit runs it");
  auto max_throughput = system().scheduler().max_throughput();
  while (!jobs_.empty()) {
    auto job = jobs_.front();
    jobs_.pop_front();
    if (budget-- <= 0) {
      system().scheduler().enqueue(job);
      continue;
    }
    switch (job->resume(this, max_throughput)) {
    case caf::resumable::resume_later:
      jobs_.push_back(job);
      break;
    case caf::resumable::done:
    case caf::resumable::awaiting_message:
      intrusive_ptr_release(job);
      break;
    default: // shutdown_execution_unit: only the scheduler's own helper
      break;
    }
  }
}

} // namespace pgcm::detail
