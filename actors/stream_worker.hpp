#pragma once

// stream_worker: runs one row stream (messages/protocol.hpp, "Row streaming")
// on a connection of its own, driven without blocking.
//
// Owns: one libpq connection, opened for the stream and closed after it
// (nothing else is ever sent on it), and its registration with the reactor.
// Answers: (stream_atom, stream_job) -> its own control handle once the
// statement was sent, or an error (connect failed, deadline passed).
// Sends the job's sink: chunks of chunk_rows rows, one per credit, then
// exactly one (stream_end_atom, id, rows, error).
//
//      spawn (by the node supervisor, which delegates the job to it)
//        |  PQconnectStartParams
//        v
//   [connecting] --fail / deadline--> answers the job with the error, quits
//        | ready + job: PQsendQueryParams, PQsetSingleRowMode
//        v             (PQsetChunkedRowsMode where libpq offers it)
//    [streaming] --result read to its end / error / deadline / cancel /
//        |          sink down / exit (shutdown)--> [ended] (connection closed, quits)
//
// Back pressure: rows are read only while no full chunk waits for credit;
// without credit the socket is not watched, so the kernel's buffers fill
// and the server waits in ClientWrite. At most one full chunk plus the one
// being filled are held.
//
// Guarantees: the sink gets exactly one end message after a control handle
// was answered (unless it died); a statement still running when the stream
// ends early (deadline, cancel, sink down, shutdown) is cancelled on the
// server (PQcancel on a detached thread) and its connection closed.

#include <chrono>
#include <memory>
#include <string>

#include "pgcm/messages/internal_protocol.hpp"

namespace pgcm::detail {
class reactor;
struct conn_params;
} // namespace pgcm::detail

namespace pgcm {

struct stream_worker_config {
  std::string node_id;
  std::shared_ptr<const detail::conn_params> params;
  std::shared_ptr<detail::reactor> io;
  std::chrono::milliseconds connect_timeout{5000};
};

stream_worker_actor spawn_stream_worker(caf::actor_system& sys, stream_worker_config cfg);

} // namespace pgcm
