#pragma once

#include <cstdint>
#include <memory>
#include <thread>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

namespace pgcm::detail {

/// One epoll thread that tells actors when their sockets are ready, so that
/// libpq runs in non-blocking mode inside ordinary event-based actors and no
/// CAF scheduler thread ever waits on a socket.
///
/// Interest is one-shot: after `watch(id, fd, ...)` the actor receives one
/// `(io_atom, uint32_t events)` message when the socket becomes ready and must
/// call `watch` again for the next one. Thread-safe.
///
/// The thread is also a CAF execution unit (`inline_unit`): the core actor
/// it wakes runs on it at once, and so do the core actors that one makes
/// runnable, up to `inline_budget` jobs per wake-up (docs/threading.md I3-I5,
/// off with I10); the rest goes to the actor system's scheduler.
///
/// Stops in the destructor (owned by shared_ptr by the actors that use it):
/// joins its thread, or detaches it when the last owner is an actor running
/// on that very thread (the loop then ends after the current job).
class reactor {
public:
  /// With `run_inline` false (manager_options::inline_execution off) every
  /// actor it wakes runs on the scheduler.
  explicit reactor(caf::actor_system& sys, bool run_inline = true);
  ~reactor();
  reactor(const reactor&) = delete;
  reactor& operator=(const reactor&) = delete;

  /// Jobs run on the reactor thread per wake-up before the rest is handed
  /// to the scheduler.
  static constexpr int inline_budget = 16;

  /// Registers `target`; returns the id for watch/remove.
  std::uint64_t add(caf::actor target);

  /// (Re)arms one-shot interest in `fd`. With `run_inline` false the event's
  /// actor runs on the scheduler instead of the reactor thread (CPU-heavy
  /// steps). Neither readable nor writable: no interest until the next
  /// `watch` (errors and hang-ups still report, once). Returns false (errno
  /// set) on failure.
  bool watch(std::uint64_t id, int fd, bool readable, bool writable, bool run_inline = true);

  /// Stops watching `fd` (if >= 0) and forgets `id`; no message is sent for it
  /// afterwards unless one is already on its way.
  void remove(std::uint64_t id, int fd);

  /// Runs PQcancel for `cancel` (a PGcancel*, owned and freed here) on a
  /// detached thread: PQcancel blocks until the server answers or TCP gives
  /// up, which must never hold up an actor, a reply or a shutdown. At most
  /// `max_cancel_threads` run at once per process; returns false (and frees
  /// `cancel`) when that many are already running.
  static bool cancel_async(void* cancel);
  static constexpr int max_cancel_threads = 64;

private:
  struct core; // shared by the owner and the thread (outlives either)
  std::shared_ptr<core> core_;
  std::thread thread_;
};

} // namespace pgcm::detail
