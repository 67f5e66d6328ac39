#pragma once

// A facade caller waiting on its query's socket itself.
//
// Without it a query through the blocking facade wakes two threads: the
// reactor (the socket is readable) and then the caller (its reply is in its
// mailbox). A raw libpq client blocking in PQgetResult wakes once. When a
// caller's query is the only one on an idle connection, the connection
// worker (running on the caller's thread, see inline_unit.hpp) lends the
// socket to the caller instead of leaving it to the reactor: it takes the
// socket out of the reactor's interest and the caller poll()s it. Whenever
// it is readable the caller runs the worker on its own thread, which reads;
// once the result is complete it delivers the reply into the caller's
// mailbox (no wake-up: the caller is not blocked) and hands the socket back
// to the reactor.
//
// The worker takes the socket back (`revoke`) whenever it needs the reactor
// again or answers without the socket (a deadline, a drain, its end); the
// caller then wakes through `wake_fd` and waits for its reply in its mailbox
// as usual. A caller that stops waiting with the socket still lent (out of
// time) runs the worker once more, which then re-arms the reactor. Either
// way exactly one reply reaches the caller, through its mailbox, like every
// other reply.

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
