#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <caf/actor.hpp>

namespace pgcm::detail {

/// One epoll thread that tells actors when their sockets are ready, so that
/// libpq runs in non-blocking mode inside ordinary event-based actors and no
/// CAF scheduler thread ever waits on a socket.
///
/// Interest is one-shot: after `watch(id, fd, ...)` the actor receives one
/// `(io_atom, uint32_t events)` message when the socket becomes ready and must
/// call `watch` again for the next one. Thread-safe. Stops and joins its thread
/// in the destructor (owned by shared_ptr by the actors that use it).
class reactor {
public:
  reactor();
  ~reactor();
  reactor(const reactor&) = delete;
  reactor& operator=(const reactor&) = delete;

  /// Registers `target`; returns the id for watch/remove.
  std::uint64_t add(caf::actor target);

  /// (Re)arms one-shot interest in `fd`. Returns false (errno set) on failure.
  bool watch(std::uint64_t id, int fd, bool readable, bool writable);

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
  void run();

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mtx_;
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, caf::actor> targets_;
  std::thread thread_;
};

} // namespace pgcm::detail
