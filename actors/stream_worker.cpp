#include "pgcm/actors/stream_worker.hpp"

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

#include <libpq-fe.h>
#include <sys/epoll.h>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "log.hpp"
#include "node_error.hpp"
#include "pgcm/actors/connection_worker.hpp"
#include "pgcm/messages/error.hpp"
#include "pq_connection.hpp"
#include "reactor.hpp"
#include "tick_timer.hpp"

namespace pgcm {

namespace {

using namespace std::chrono;

enum class phase : std::uint8_t {
  connecting, ///< opening the connection; the job may not be here yet
  streaming,  ///< statement sent; reading rows as credit allows
  ended,      ///< end sent (or owed to nobody); connection closed
};

struct stream_data {
  static inline const char* name = "pgcm.stream_worker"; // a name only (logs)
  stream_worker_config cfg;
  std::unique_ptr<detail::pq_connection> conn;
  std::uint64_t reg_id = 0;
  int watched_fd = -1;
  phase state = phase::connecting;
  std::int64_t connect_deadline_ns = 0;
  /// Set once connecting failed before the job arrived.
  caf::error connect_error;
  bool connected = false;

  bool have_job = false;
  stream_job job;
  caf::typed_response_promise<stream_control_actor> rp;

  std::uint32_t credit = 0;
  bool columns_known = false;
  std::vector<std::string> names;
  std::vector<std::uint32_t> oids;
  result_set filling;
  std::deque<result_set> ready; // full chunks waiting for credit
  std::uint64_t rows = 0;       // rows read so far
  std::uint64_t chunks_sent = 0;
  bool result_done = false;   // PQgetResult returned null: the statement ended
  std::string command;        // the command tag (PQcmdStatus), set at the end
  std::int64_t affected = -1; // PQcmdTuples
  caf::error query_error;     // the first error the server sent
  bool armed = false;         // the reactor watches the socket
  bool want_write = false;    // output left to flush

  detail::tick_timer timer;
  /// Told to drain (shutdown): the stream may run until then (0: not draining).
  std::int64_t drain_deadline_ns = 0;

  int owned_watched_fd() const {
    return conn && watched_fd >= 0 && conn->socket() == watched_fd ? watched_fd : -1;
  }

  ~stream_data() {
    if (rp.pending())
      rp.deliver(detail::node_error(errc::shutting_down, cfg.node_id, "stream ended early"));
    if (cfg.io) cfg.io->remove(reg_id, owned_watched_fd());
  }
};

using self_ptr = stream_worker_actor::stateful_pointer<stream_data>;

void arm(self_ptr self) {
  auto& st = self->state;
  int fd = st.conn ? st.conn->socket() : -1;
  if (fd < 0) return;
  st.watched_fd = fd;
  st.armed = true;
  // Not inline: rows are converted here, which is no work for the reactor thread.
  st.cfg.io->watch(st.reg_id, fd, true, st.want_write, false);
}

/// Stops watching and closes the connection; a statement still running is
/// cancelled on the server first.
void close_connection(self_ptr self, bool cancel_running) {
  auto& st = self->state;
  if (!st.conn) return;
  if (cancel_running && st.state == phase::streaming && !st.result_done)
    detail::reactor::cancel_async(st.conn->make_cancel());
  if (auto fd = st.owned_watched_fd(); st.cfg.io && fd >= 0) st.cfg.io->remove(0, fd);
  st.watched_fd = -1;
  st.armed = false;
  st.conn->close();
}

/// Ends the stream: sends the end message (unless `tell_sink` is false),
/// closes the connection and quits.
void end_stream(self_ptr self, caf::error err, bool tell_sink = true) {
  auto& st = self->state;
  if (st.state == phase::ended) return;
  bool early = !st.result_done;
  close_connection(self, early);
  if (st.rp.pending()) {
    // Never got as far as a control handle: the error is the reply.
    st.rp.deliver(err ? err : detail::node_error(errc::internal, st.cfg.node_id, "stream lost"));
    tell_sink = false;
  }
  st.state = phase::ended;
  st.ready.clear();
  if (tell_sink && st.have_job)
    self->send(st.job.sink, stream_end_atom::value, st.job.spec.id, st.rows, std::move(err));
  log::debug("node {}: stream {} ended after {} rows", st.cfg.node_id, st.job.spec.id, st.rows);
  self->quit();
}

caf::error server_error(const stream_data& st, const PGresult* r) {
  const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  auto text =
      primary ? detail::trimmed_message(primary) : detail::trimmed_message(PQresultErrorMessage(r));
  if (text.empty()) text = st.conn->last_error();
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  const char* severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
  bool fatal =
      (severity && (std::strcmp(severity, "FATAL") == 0 || std::strcmp(severity, "PANIC") == 0)) ||
      PQstatus(st.conn->native()) == CONNECTION_BAD;
  auto code = fatal ? errc::connection_failed : errc::query_failed;
  auto what = fatal ? "connection lost: " : "query failed: ";
  return make_error(code, detail::node_message(st.cfg.node_id, what) + text,
                    state ? std::string{state} : std::string{});
}

caf::error lost(const stream_data& st, const std::string& why) {
  return detail::node_error(errc::connection_failed, st.cfg.node_id, "connection lost", why);
}

void start_filling(stream_data& st) {
  st.filling = result_set{st.names, st.oids};
  st.filling.set_node_id(st.cfg.node_id);
}

/// Sends full chunks while there is credit; after the statement ended, the
/// rest and then the end message.
void send_ready(self_ptr self) {
  auto& st = self->state;
  while (st.credit > 0 && !st.ready.empty()) {
    --st.credit;
    ++st.chunks_sent;
    self->send(st.job.sink, stream_rows_atom::value, st.job.spec.id, std::move(st.ready.front()));
    st.ready.pop_front();
  }
  if (st.result_done && st.ready.empty()) {
    auto err = std::move(st.query_error);
    end_stream(self, std::move(err));
  }
}

/// Takes the rows of one single-row (or chunked) result into the chunks.
void take_rows(stream_data& st, const PGresult* r) {
  if (!st.columns_known) {
    int ncols = PQnfields(r);
    for (int c = 0; c < ncols; ++c) {
      const char* n = PQfname(r, c);
      st.names.emplace_back(n ? n : "");
      st.oids.push_back(static_cast<std::uint32_t>(PQftype(r, c)));
    }
    st.columns_known = true;
    start_filling(st);
  }
  int nrows = PQntuples(r);
  int ncols = PQnfields(r);
  for (int i = 0; i < nrows; ++i) {
    for (int c = 0; c < ncols; ++c) {
      if (PQgetisnull(r, i, c))
        st.filling.append_null();
      else
        st.filling.append_cell(PQgetvalue(r, i, c), static_cast<std::size_t>(PQgetlength(r, i, c)));
    }
    st.filling.end_row();
    ++st.rows;
    if (st.filling.size() >= st.job.spec.chunk_rows) {
      st.ready.push_back(std::move(st.filling));
      start_filling(st);
    }
  }
}

void note_command(stream_data& st, PGresult* r) {
  if (const char* tag = PQcmdStatus(r)) st.command = tag;
  const char* n = PQcmdTuples(r);
  char* end = nullptr;
  long long v = n && *n ? std::strtoll(n, &end, 10) : -1;
  st.affected = end && *end == '\0' && v >= 0 ? v : -1;
}

/// Reads the results libpq has parsed, as long as no full chunk waits for
/// credit. Returns true when it needs more input from the socket, false when
/// it stopped for lack of credit (the socket is then left alone) or the
/// stream ended.
bool pump(self_ptr self) {
  auto& st = self->state;
  auto* c = st.conn->native();
  for (;;) {
    while (st.ready.empty() && !st.result_done) {
      if (PQisBusy(c) != 0) break;
      PGresult* r = PQgetResult(c);
      if (r == nullptr) {
        st.result_done = true;
        break;
      }
      switch (PQresultStatus(r)) {
      case PGRES_SINGLE_TUPLE:
#ifdef LIBPQ_HAS_CHUNK_MODE
      case PGRES_TUPLES_CHUNK:
#endif
      case PGRES_TUPLES_OK: // the end of the rows (none in it in single-row mode)
        if (PQresultStatus(r) == PGRES_TUPLES_OK) note_command(st, r);
        try {
          take_rows(st, r);
        } catch (const error& e) { // more than 4 GiB of text in one chunk
          if (!st.query_error)
            st.query_error =
                make_error(errc::invalid_argument, detail::node_message(st.cfg.node_id, e.what()));
        }
        break;
      case PGRES_COMMAND_OK:
        note_command(st, r);
        break;
      case PGRES_EMPTY_QUERY:
        break;
      case PGRES_COPY_IN:
      case PGRES_COPY_OUT:
      case PGRES_COPY_BOTH:
        PQclear(r);
        end_stream(self, make_error(errc::invalid_argument,
                                    detail::node_message(st.cfg.node_id,
                                                         "COPY is not supported by query_stream")));
        return false;
      default:
        if (!st.query_error) st.query_error = server_error(st, r);
        break;
      }
      PQclear(r);
    }
    if (st.result_done) {
      if (st.query_error) {
        st.ready.clear(); // rows before an error are not delivered any more
      } else if (st.filling.size() > 0 || (st.chunks_sent == 0 && st.ready.empty())) {
        // The last chunk, with the command tag; a result without rows still
        // tells its columns (or, for a statement without any, its tag).
        if (!st.columns_known) st.filling.set_node_id(st.cfg.node_id);
        st.filling.set_command(st.command);
        st.filling.set_affected_rows(st.affected);
        st.ready.push_back(std::move(st.filling));
        st.filling = result_set{};
      }
    }
    send_ready(self); // ends the stream once the statement ended and all is sent
    if (st.state != phase::streaming || !st.ready.empty()) return false;
    if (PQisBusy(c) != 0) return true;
  }
}

void on_io(self_ptr self, bool writable) {
  auto& st = self->state;
  st.armed = false;
  auto* c = st.conn->native();
  if (writable || st.want_write) {
    int f = PQflush(c);
    if (f < 0) return end_stream(self, lost(st, st.conn->last_error()));
    st.want_write = f == 1;
  }
  if (!st.ready.empty()) {
    // Paused for credit; only output may be due.
    if (st.want_write) arm(self);
    return;
  }
  std::string err;
  if (!st.conn->consume(err)) return end_stream(self, lost(st, err));
  if (pump(self)) arm(self);
}

void start_statement(self_ptr self) {
  auto& st = self->state;
  auto* c = st.conn->native();
  auto& job = st.job;
  // The connection is new and idle: leave pipeline mode, single-row mode is
  // simplest without it.
  if (PQexitPipelineMode(c) != 1)
    return end_stream(self, lost(st, "cannot leave pipeline mode: " + st.conn->last_error()));
  std::vector<const char*> values;
  values.reserve(job.params.size());
  for (auto& p : job.params)
    values.push_back(p.null ? nullptr : p.text.c_str());
  if (PQsendQueryParams(c, job.sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                        nullptr, nullptr, 0) != 1)
    return end_stream(self, lost(st, st.conn->last_error()));
#ifdef LIBPQ_HAS_CHUNK_MODE
  bool mode = PQsetChunkedRowsMode(c, static_cast<int>(job.spec.chunk_rows)) == 1;
#else
  bool mode = PQsetSingleRowMode(c) == 1;
#endif
  if (!mode)
    return end_stream(
        self, make_error(errc::internal,
                         detail::node_message(st.cfg.node_id, "libpq refused single-row mode")));
  int f = PQflush(c);
  if (f < 0) return end_stream(self, lost(st, st.conn->last_error()));
  st.want_write = f == 1;
  st.state = phase::streaming;
  st.credit = job.spec.credit;
  self->monitor(job.sink);
  st.rp.deliver(caf::actor_cast<stream_control_actor>(self));
  arm(self);
  st.timer.arm(self, tick_atom::value, job.deadline_ns, steady_now_ns());
}

void on_connect_progress(self_ptr self) {
  auto& st = self->state;
  std::string err;
  switch (st.conn->poll_connect(err)) {
  case detail::pq_connection::connect_status::reading:
    st.want_write = false;
    arm(self);
    return;
  case detail::pq_connection::connect_status::writing:
    st.want_write = true;
    arm(self);
    return;
  case detail::pq_connection::connect_status::ready:
    st.want_write = false;
    st.connected = true;
    if (st.have_job) start_statement(self);
    return;
  case detail::pq_connection::connect_status::failed: {
    auto e = detail::node_error(errc::connection_failed, st.cfg.node_id, "connection failed", err);
    if (st.have_job) return end_stream(self, std::move(e));
    close_connection(self, false);
    st.connect_error = std::move(e);
    return;
  }
  }
}

std::string timeout_text(const stream_data& st, const char* where) {
  return detail::node_message(st.cfg.node_id, "query timeout (deadline of " +
                                                  std::to_string(st.job.timeout_ms) + " ms passed" +
                                                  where + ")");
}

void on_tick(self_ptr self) {
  auto& st = self->state;
  auto now = steady_now_ns();
  if (st.drain_deadline_ns != 0 && now >= st.drain_deadline_ns)
    return end_stream(self, detail::node_error(errc::shutting_down, st.cfg.node_id,
                                               "stream cancelled: shutdown deadline passed"));
  if (st.state == phase::connecting) {
    if (st.have_job && now >= st.job.deadline_ns)
      return end_stream(self,
                        make_error(errc::query_timeout, timeout_text(st, " while connecting")));
    if (now >= st.connect_deadline_ns) {
      auto e = detail::node_error(errc::connection_failed, st.cfg.node_id, "connection failed",
                                  "timeout after " +
                                      std::to_string(st.cfg.connect_timeout.count()) + " ms");
      if (st.have_job) return end_stream(self, std::move(e));
      close_connection(self, false);
      st.connect_error = std::move(e);
      return;
    }
  } else if (st.state == phase::streaming && now >= st.job.deadline_ns) {
    return end_stream(self, make_error(errc::query_timeout, timeout_text(st, " mid-stream")), true);
  }
  auto next = st.connect_deadline_ns;
  if (st.have_job && (st.state != phase::connecting || st.job.deadline_ns < next))
    next = st.job.deadline_ns;
  if (st.drain_deadline_ns != 0 && st.drain_deadline_ns < next) next = st.drain_deadline_ns;
  st.timer.arm(self, tick_atom::value, next, now);
}

stream_worker_actor::behavior_type stream_worker(self_ptr self, stream_worker_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.conn = std::make_unique<detail::pq_connection>(0);
  st.reg_id = st.cfg.io->add(caf::actor_cast<caf::actor>(self));
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& st = self->state;
    if (st.have_job && dm.source == st.job.sink.address()) {
      log::debug("node {}: stream {}: the requester is gone; cancelling", st.cfg.node_id,
                 st.job.spec.id);
      end_stream(self, caf::error{}, false);
    }
  });
  self->set_exit_handler([self](const caf::exit_msg& msg) {
    if (!msg.reason) return; // the supervisor it is linked to ended normally: drain decides
    auto& st = self->state;
    end_stream(self, detail::node_error(errc::shutting_down, st.cfg.node_id,
                                        "stream ended: shutting down"));
    self->quit(msg.reason);
  });
  std::string err;
  if (!st.conn->start(*st.cfg.params, err)) {
    st.connect_error =
        detail::node_error(errc::connection_failed, st.cfg.node_id, "connection failed", err);
    close_connection(self, false);
  } else {
    st.connect_deadline_ns =
        steady_now_ns() + duration_cast<nanoseconds>(st.cfg.connect_timeout).count();
    st.timer.arm(self, tick_atom::value, st.connect_deadline_ns, steady_now_ns());
    on_connect_progress(self);
  }
  return {
      [=](stream_atom, stream_job& job) -> caf::result<stream_control_actor> {
        auto& st = self->state;
        auto rp = self->make_response_promise<stream_control_actor>();
        if (st.have_job) {
          rp.deliver(make_error(errc::internal, "stream worker got a second job"));
          return rp;
        }
        st.have_job = true;
        st.job = std::move(job);
        st.rp = rp;
        if (st.connect_error) {
          end_stream(self, std::move(st.connect_error));
          return rp;
        }
        if (st.job.deadline_ns <= steady_now_ns()) {
          end_stream(self, make_error(errc::query_timeout, timeout_text(st, "")));
          return rp;
        }
        st.timer.arm(self, tick_atom::value, st.job.deadline_ns, steady_now_ns());
        if (st.connected) start_statement(self);
        return rp;
      },
      [=](credit_atom, std::uint32_t n) {
        auto& st = self->state;
        if (st.state != phase::streaming) return;
        st.credit += n;
        bool was_full = !st.ready.empty();
        send_ready(self);
        if (self->state.state != phase::streaming || !was_full || !st.ready.empty()) return;
        // Room again: what libpq holds first, then the socket.
        if (pump(self) && !st.armed) arm(self);
      },
      [=](cancel_atom) {
        auto& st = self->state;
        if (st.state != phase::streaming) return;
        end_stream(self, make_error(errc::query_failed,
                                    detail::node_message(st.cfg.node_id,
                                                         "stream cancelled by the requester"),
                                    "57014"));
      },
      [=](io_atom, std::uint32_t events) {
        auto& st = self->state;
        if (st.state == phase::connecting && !st.connect_error && st.conn->native())
          on_connect_progress(self);
        else if (st.state == phase::streaming)
          on_io(self, (events & EPOLLOUT) != 0);
      },
      [=](tick_atom, std::uint64_t gen) {
        if (self->state.timer.fired(gen)) on_tick(self);
      },
      [=](drain_atom, caf::timespan grace) {
        // Shutdown: the stream may finish within the grace period, like the
        // pool's requests; then it is cancelled.
        auto& st = self->state;
        auto at = steady_now_ns() + grace.count();
        if (st.drain_deadline_ns == 0 || at < st.drain_deadline_ns) st.drain_deadline_ns = at;
        st.timer.arm(self, tick_atom::value, st.drain_deadline_ns, steady_now_ns());
      },
  };
}

} // namespace

stream_worker_actor spawn_stream_worker(caf::actor_system& sys, stream_worker_config cfg) {
  return sys.spawn(stream_worker, std::move(cfg));
}

} // namespace pgcm
