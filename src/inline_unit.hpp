#pragma once

// A CAF execution unit for a thread that is not one of the scheduler's
// workers: the reactor thread and a facade caller. A message sent with it as
// the sender's context makes the receiving actor runnable *here* (CAF calls
// `exec_later`), and `run` then resumes such actors on the calling thread,
// including the ones they make runnable in turn, instead of handing them to
// the scheduler's central queue, which wakes a worker thread: one thread
// wake-up and one context switch less per hop. A bounded number of jobs runs
// here; the rest, and anything left when the unit goes, goes to the
// scheduler.
//
// Only pgcm's core actors run here (manager, node supervisors, connection
// workers, health probes: spawned with the core_actor marker): they
// never block and run no application code. An application's actors (a
// requester receiving its answer, an event subscriber, the state store with
// its change callback) still run on the scheduler's threads, so code that
// breaks CAF's rule and blocks in an event-based actor cannot stall pgcm's
// I/O or a caller's thread.

#include <deque>
#include <memory>
#include <thread>

#include <caf/execution_unit.hpp>
#include <caf/fwd.hpp>

namespace pgcm::detail {

struct socket_lend;

class inline_unit final : public caf::execution_unit {
public:
  /// Bound to the calling thread: only that thread runs its jobs.
  explicit inline_unit(caf::actor_system& sys);
  ~inline_unit() override;
  inline_unit(const inline_unit&) = delete;
  inline_unit& operator=(const inline_unit&) = delete;

  void exec_later(caf::resumable* job) override;

  /// Resumes queued jobs, at most `budget` of them (an actor that yields
  /// with messages left counts again); hands the rest to the scheduler.
  /// Returns with nothing queued.
  void run(int budget);

  /// A facade caller offers to wait on its query's socket itself (see
  /// socket_lend.hpp); the connection worker that sends the query while it
  /// runs here may take the offer.
  void offer(std::shared_ptr<socket_lend> x) { offer_ = std::move(x); }

  const std::shared_ptr<socket_lend>& offered() const { return offer_; }

private:
  std::thread::id owner_;
  std::shared_ptr<socket_lend> offer_;
  std::deque<caf::resumable*> jobs_;
};

} // namespace pgcm::detail
