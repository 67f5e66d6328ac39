#pragma once

// The lifecycle of one connection worker (actors/connection_worker.cpp) as
// one enum with its legal moves, so that the moves are unit-tested without a
// server (tests/unit/test_pool_policy.cpp).
//
//      spawn
//        |  PQconnectStartParams
//        v
//   [connecting] --timeout/fail--> [failed]         drain --> [closed]
//        | ok
//        v
//     [ready] --server gone / broken--> [failed] (pending answered)
//        |  \_
//        |   `--drain--> [draining] --in-flight answered / grace over--> [closed]
//        | open transaction after a request                  (or broken: [failed])
//        v
//    [retiring] --in-flight answered--> [closed]   (drain: [draining])
//
// closed and failed are final: the worker may linger briefly to hand back
// requests routed to it meanwhile, then quits.

#include <cstdint>

namespace pgcm::detail {

/// Lifecycle of a worker (reported to the owner as worker_state: draining
/// reports as retiring, which is what it is to the owner).
enum class worker_phase : std::uint8_t {
  connecting, ///< opening the connection (TCP, TLS, auth)
  ready,      ///< open; takes requests
  retiring,   ///< left in a transaction: no new requests; closes when in-flight ones are answered
  draining,   ///< told to drain: no new requests; in-flight ones until the grace deadline
  closed,     ///< closed cleanly; nothing may touch the connection any more
  failed,     ///< broke or could not be opened; as closed
};

inline const char* to_string(worker_phase p) {
  using phase = worker_phase;
  switch (p) {
  case phase::connecting:
    return "connecting";
  case phase::ready:
    return "ready";
  case phase::retiring:
    return "retiring";
  case phase::draining:
    return "draining";
  case phase::closed:
    return "closed";
  case phase::failed:
    return "failed";
  }
  return "?";
}

/// Whether a worker may move from `from` to `to` (staying is always legal).
constexpr bool legal_transition(worker_phase from, worker_phase to) {
  using phase = worker_phase;
  if (from == to) return true;
  switch (from) {
  case phase::connecting:
    return to == phase::ready || to == phase::closed || to == phase::failed;
  case phase::ready:
    return to == phase::retiring || to == phase::draining || to == phase::failed;
  case phase::retiring:
    return to == phase::draining || to == phase::closed || to == phase::failed;
  case phase::draining:
    return to == phase::closed || to == phase::failed;
  case phase::closed:
  case phase::failed:
    return false;
  }
  return false;
}

} // namespace pgcm::detail
