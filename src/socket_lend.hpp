#pragma once

// A facade caller waiting on its query's socket itself: the connection
// worker, running on the caller's thread, lends it the socket when the
// caller's query is the only one in flight; the caller poll()s it and runs
// the worker whenever it is readable; the worker takes it back (`revoke`)
// whenever it needs the reactor again. Exactly one reply, always through
// the caller's mailbox. Rules: docs/threading.md I8, I9.

#include <atomic>
#include <thread>

#include <caf/actor.hpp>
#include <caf/actor_clock.hpp>
#include <caf/fwd.hpp>

namespace pgcm::detail {

class inline_unit;

struct socket_lend {
  socket_lend();
  ~socket_lend();
  socket_lend(const socket_lend&) = delete;
  socket_lend& operator=(const socket_lend&) = delete;

  /// The caller's blocking actor: only its own request gets the socket.
  caf::actor_control_block* asker = nullptr;
  /// The caller's thread (set per request: the lend is reused with its
  /// asker; a worker may still read it while taking back an earlier lend).
  std::atomic<std::thread::id> waiter;
  /// Readable when the worker revoked the lend from another thread (an
  /// eventfd; -1 if none could be made: then nothing is ever lent).
  int wake_fd = -1;

  // Set by the worker while it runs on the caller's thread.
  std::atomic<bool> lent{false};
  int fd = -1;
  caf::actor worker;

  /// Whether the caller still polls (only read on the caller's thread): a
  /// worker that ran there without completing the result keeps the lend.
  bool polling = false;
  /// Counts the worker's reads on the caller's thread (only touched there):
  /// an io_atom that did not run here (the worker was busy on another
  /// thread) is not sent again while the socket stays readable.
  unsigned reads_here = 0;

  /// The worker takes the socket back; wakes the caller if it is another
  /// thread's turn to do so.
  void revoke();

  /// Called by the caller after the worker lent it the socket: polls it, at
  /// most until `until`, and runs the worker on `here` (at most `budget`
  /// jobs at a time) whenever it is readable, until the worker took it back.
  /// Then the reply is in the caller's mailbox or on its way.
  void await(inline_unit& here, caf::actor_clock::time_point until, int budget);
};

} // namespace pgcm::detail
