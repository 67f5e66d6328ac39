#pragma once

// tick_timer: one pending tick at a time, for the earliest time wanted.
//
// CAF 0.17's delayed_send cannot be cancelled: every tick carries a
// generation, and only the tick of the current generation counts (a tick
// made stale by a newer, earlier one arrives and is ignored). Wanting a time
// later than the pending tick sends nothing: the pending tick comes first,
// and its handler asks again for what is still due.

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace pgcm::detail {

class tick_timer {
public:
  /// Asks to be woken at `at_ns` (steady ns; <= 0: never). Returns the
  /// generation of a new tick to send, or 0 when the pending one is early
  /// enough.
  std::uint64_t want(std::int64_t at_ns) {
    if (at_ns <= 0 || (at_ns_ != 0 && at_ns_ <= at_ns)) return 0;
    at_ns_ = at_ns;
    return ++gen_;
  }

  /// A new generation for a tick sent after a fixed delay, whatever is
  /// pending (which becomes stale).
  std::uint64_t replace() {
    at_ns_ = 0;
    return ++gen_;
  }

  /// Whether tick `gen` is the current one; if so nothing is pending any more.
  bool fired(std::uint64_t gen) {
    if (gen != gen_) return false;
    at_ns_ = 0;
    return true;
  }

  /// Forgets the pending tick: the next `want` sends a new one.
  void reset() { at_ns_ = 0; }

  /// When the pending tick is due (0: none pending).
  std::int64_t pending_at() const { return at_ns_; }
  std::uint64_t generation() const { return gen_; }

  /// Sends `(atom, gen)` to `self` at `at_ns` unless an earlier tick is pending.
  template <class Self, class Atom>
  void arm(Self* self, Atom atom, std::int64_t at_ns, std::int64_t now_ns) {
    if (auto gen = want(at_ns))
      self->delayed_send(self, std::chrono::nanoseconds{std::max<std::int64_t>(0, at_ns - now_ns)},
                         atom, gen);
  }

  /// Sends `(atom, gen)` to `self` after `delay`; any pending tick goes stale.
  template <class Self, class Atom, class Duration>
  void arm_after(Self* self, Atom atom, Duration delay) {
    self->delayed_send(self, delay, atom, replace());
  }

private:
  std::uint64_t gen_ = 0;
  std::int64_t at_ns_ = 0;
};

} // namespace pgcm::detail
