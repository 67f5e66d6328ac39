#pragma once

// A CAF execution unit for a thread that is not one of the scheduler's
// workers (the reactor thread, a facade caller): a message sent with it as
// the sender's context makes the receiving core actor runnable here, and
// `run` resumes it on this thread instead of waking a scheduler thread.
// Rules (one thread and one stack frame per unit, only core actors, budget,
// what may use it after the call returns): docs/threading.md I2-I5.

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
  static constexpr unsigned alive_tag = 0x1a11ce;
  unsigned alive_ = alive_tag; // 0 once destroyed (threading.md I3, debug check)
  std::thread::id owner_;
  std::shared_ptr<socket_lend> offer_;
  std::deque<caf::resumable*> jobs_;
};

} // namespace pgcm::detail
