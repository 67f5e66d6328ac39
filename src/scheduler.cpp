#include "pgcm/scheduler.hpp"

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <limits>
#include <mutex>

#include <caf/actor_system_config.hpp>
#include <caf/policy/unprofiled.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduler/coordinator.hpp>

namespace pgcm {

namespace {

/// Messages an actor handles per turn on a worker (CAF's default: unlimited).
constexpr std::size_t slot_max_throughput = 64;

/// CAF scheduler policy: work sharing plus a per-worker slot (see the header).
class slot_sharing : public caf::policy::unprofiled {
public:
  /// Slot jobs a worker runs in a row before it serves the central queue.
  static constexpr int max_streak = 16;

  struct coordinator_data {
    explicit coordinator_data(caf::scheduler::abstract_coordinator*) {
      // nop
    }
    std::deque<caf::resumable*> queue;
    std::mutex lock;
    std::condition_variable cv;
  };

  struct worker_data {
    explicit worker_data(caf::scheduler::abstract_coordinator*) {
      // nop
    }
    caf::resumable* next = nullptr; // only touched by the worker's own thread
    int streak = 0;
  };

  /// The central queue's front, removed (lock held, queue not empty).
  static caf::resumable* take_front(coordinator_data& c) {
    auto job = c.queue.front();
    c.queue.pop_front();
    return job;
  }

  template <class Coordinator> void central_enqueue(Coordinator* self, caf::resumable* job) {
    auto& c = d(self);
    {
      std::lock_guard<std::mutex> guard{c.lock};
      c.queue.push_back(job);
    }
    c.cv.notify_one();
  }

  template <class Worker> void external_enqueue(Worker* self, caf::resumable* job) {
    central_enqueue(self->parent(), job);
  }

  /// Called on the worker's own thread by an actor it is running.
  template <class Worker> void internal_enqueue(Worker* self, caf::resumable* job) {
    auto& w = d(self);
    if (w.next != nullptr) central_enqueue(self->parent(), w.next);
    w.next = job;
  }

  template <class Worker> void resume_job_later(Worker* self, caf::resumable* job) {
    central_enqueue(self->parent(), job);
  }

  template <class Worker> caf::resumable* dequeue(Worker* self) {
    auto& w = d(self);
    auto& c = d(self->parent());
    if (w.next != nullptr) {
      auto job = w.next;
      w.next = nullptr;
      if (++w.streak < max_streak) return job;
      w.streak = 0;
      {
        std::lock_guard<std::mutex> guard{c.lock};
        if (c.queue.empty()) return job;
        c.queue.push_back(job);
        job = take_front(c);
      }
      // The slot job went to the central queue: someone may take it now.
      c.cv.notify_one();
      return job;
    }
    w.streak = 0;
    std::unique_lock<std::mutex> guard{c.lock};
    c.cv.wait(guard, [&] { return !c.queue.empty(); });
    return take_front(c);
  }

  template <class Worker, class UnaryFunction>
  void foreach_resumable(Worker* self, UnaryFunction f) {
    auto& w = d(self);
    if (w.next != nullptr) {
      auto job = w.next;
      w.next = nullptr;
      f(job);
    }
  }

  template <class Coordinator, class UnaryFunction>
  void foreach_central_resumable(Coordinator* self, UnaryFunction f) {
    auto& c = d(self);
    std::unique_lock<std::mutex> guard{c.lock};
    while (!c.queue.empty())
      f(take_front(c));
  }
};

} // namespace

void use_pgcm_scheduler(caf::actor_system_config& cfg) {
  cfg.load<caf::scheduler::coordinator<slot_sharing>>();
  // A job in a worker's slot waits for the actor running on that worker to
  // yield; CAF's default lets an actor with a never-empty mailbox run
  // forever. Cap it unless the application chose a value.
  constexpr std::size_t unlimited = std::numeric_limits<std::size_t>::max();
  if (caf::get_or(cfg, "scheduler.max-throughput", unlimited) == unlimited)
    cfg.set("scheduler.max-throughput", slot_max_throughput);
}

} // namespace pgcm
