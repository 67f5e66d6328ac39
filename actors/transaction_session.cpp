#include "pgcm/actors/transaction_session.hpp"

#include <deque>
#include <memory>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "log.hpp"
#include "node_error.hpp"
#include "pgcm/actors/connection_worker.hpp"
#include "pgcm/messages/error.hpp"
#include "pq_connection.hpp"

namespace pgcm {

std::string begin_statement(const transaction_options& opts) {
  std::string sql = "BEGIN ISOLATION LEVEL ";
  switch (opts.level) {
  case isolation::read_committed:
    sql += "READ COMMITTED";
    break;
  case isolation::repeatable_read:
    sql += "REPEATABLE READ";
    break;
  case isolation::serializable:
    sql += "SERIALIZABLE";
    break;
  }
  sql += opts.read_only ? " READ ONLY" : " READ WRITE";
  if (opts.deferrable) sql += " DEFERRABLE";
  return sql;
}

namespace {

using namespace std::chrono;

/// How long a ROLLBACK the session sends on its own may take (it may sit
/// behind a cancelled statement, which gets the worker's cancel grace).
constexpr auto rollback_budget = seconds{5};

/// The session's own timer (not part of the public interface).
using session_impl_actor =
    transaction_session_actor::extend<caf::reacts_to<tick_atom, std::uint64_t>>;

enum class session_phase : std::uint8_t {
  pinning, ///< waiting for the supervisor's connection; requests queue up
  open,    ///< statements run on the pinned connection
  ending,  ///< COMMIT or ROLLBACK sent; nothing else is taken
  done,    ///< connection given back; the actor quits (or waits for a late pin)
};

/// A request that came while the connection was not granted yet.
struct queued_request {
  enum class kind : std::uint8_t { query, commit, rollback } what = kind::query;
  std::string sql;
  std::vector<param> params;
  caf::typed_response_promise<result_set> query_rp;
  caf::typed_response_promise<lsn> commit_rp;
  caf::typed_response_promise<ok_atom> rollback_rp;
};

struct session_data {
  session_config cfg;
  std::int64_t deadline_ns = 0;
  std::int64_t timeout_ms = 0;
  session_phase phase = session_phase::pinning;
  connection_worker_actor worker;
  /// BEGIN sent; `begin_failed`: its answer was an error.
  bool begun = false;
  bool begin_failed = false;
  std::string begin_error;
  int in_flight = 0;
  /// The SQLSTATE of the first statement that failed (a COMMIT after it
  /// rolls back; the commit's error carries it, so that a swallowed
  /// serialization failure is still retried by with_transaction).
  std::string first_failure_sqlstate;
  std::deque<queued_request> queued;
  /// Why the session ended early (what requests after that get).
  caf::error ended;
  /// Rollbacks asked for while the session's own ROLLBACK runs.
  std::vector<caf::typed_response_promise<ok_atom>> rollback_waiters;

  caf::error ended_error() const {
    if (ended) return ended;
    return detail::node_error(errc::invalid_argument, cfg.node_id,
                              "the transaction has ended (committed or rolled back)");
  }

  ~session_data() {
    auto err = ended ? ended
                     : detail::node_error(errc::shutting_down, cfg.node_id,
                                          "transaction session ended (shutting down)");
    for (auto& q : queued) {
      if (q.query_rp.pending()) q.query_rp.deliver(err);
      if (q.commit_rp.pending()) q.commit_rp.deliver(err);
      if (q.rollback_rp.pending()) q.rollback_rp.deliver(ok_atom::value);
    }
    for (auto& rp : rollback_waiters)
      if (rp.pending()) rp.deliver(ok_atom::value);
  }
};

using self_ptr = session_impl_actor::stateful_pointer<session_data>;

query_job make_job(const session_data& st, std::string sql, std::vector<param> params,
                   std::uint8_t tx, std::int64_t deadline_ns) {
  query_job job;
  job.sql = std::move(sql);
  job.params = std::move(params);
  job.deadline_ns = deadline_ns;
  job.timeout_ms = st.timeout_ms;
  job.attempt = 1; // never retried: another connection is another transaction
  job.start_ns = steady_now_ns();
  job.tx = tx;
  return job;
}

/// After an early end (deadline, lost connection, failed pin) the session
/// stays to answer its owner with the error that ended it, until the owner
/// sends commit / rollback or dies, or at most this long.
constexpr auto linger_time = seconds{60};
constexpr std::uint64_t deadline_tick = 0;
constexpr std::uint64_t linger_tick = 1;

/// Gives the connection back. Then quits, or (`linger`) stays to answer
/// with `ended` until commit / rollback, the owner's end or linger_time.
/// With a pin pending it waits for its answer first.
void release(self_ptr self, bool linger) {
  auto& st = self->state;
  auto was = st.phase;
  st.phase = session_phase::done;
  for (auto& rp : st.rollback_waiters)
    rp.deliver(ok_atom::value);
  st.rollback_waiters.clear();
  if (st.worker) {
    self->send(st.cfg.supervisor, unpin_atom::value, st.worker);
    st.worker = nullptr;
  }
  if (was == session_phase::pinning) return; // the pin's answer ends it
  if (linger)
    self->delayed_send(self, linger_time, tick_atom::value, linger_tick);
  else
    self->quit();
}

/// Sends BEGIN once, ahead of the first statement (same round trip).
void send_begin(self_ptr self) {
  auto& st = self->state;
  if (st.begun) return;
  st.begun = true;
  self->request(st.worker, caf::infinite, execute_atom::value,
                make_job(st, begin_statement(st.cfg.opts), {}, tx_inside, st.deadline_ns))
      .then([](result_set&) {},
            [self](caf::error& err) {
              self->state.begin_failed = true;
              self->state.begin_error = to_error_info(err).message;
            });
}

/// Rolls back in the background, answers `why` from now on, then quits
/// (`linger`: see release).
void end_with_rollback(self_ptr self, caf::error why, bool linger) {
  auto& st = self->state;
  if (!st.ended) st.ended = std::move(why);
  if (st.phase == session_phase::pinning) {
    st.phase = session_phase::done; // the pin's answer ends it
    return;
  }
  if (st.phase != session_phase::open) return;
  if (!st.begun || !st.worker) {
    release(self, linger);
    return;
  }
  st.phase = session_phase::ending;
  auto deadline =
      steady_now_ns() + duration_cast<nanoseconds>(caf::timespan{rollback_budget}).count();
  self->request(st.worker, caf::infinite, execute_atom::value,
                make_job(st, "ROLLBACK", {}, tx_end, deadline))
      .then([self, linger](result_set&) { release(self, linger); },
            [self, linger](caf::error&) { release(self, linger); });
}

void on_statement_error(self_ptr self, caf::error& err,
                        caf::typed_response_promise<result_set>& rp) {
  auto& st = self->state;
  auto info = to_error_info(err);
  switch (info.code) {
  case errc::query_failed:
    // The transaction is aborted on the server; the owner rolls back (or
    // uses ROLLBACK TO SAVEPOINT).
    if (st.first_failure_sqlstate.empty() && info.sqlstate)
      st.first_failure_sqlstate = *info.sqlstate;
    rp.deliver(std::move(err));
    return;
  case errc::query_timeout:
    // Cancelled on the server by the worker; roll back.
    rp.deliver(err);
    end_with_rollback(self, std::move(err), true);
    return;
  default:
    // Connection lost or shutting down: nothing left to roll back here (the
    // server rolls back a transaction whose connection is gone).
    rp.deliver(err);
    if (!st.ended) st.ended = err;
    if (st.phase == session_phase::open) release(self, true);
    return;
  }
}

void run_query(self_ptr self, std::string sql, std::vector<param> params,
               caf::typed_response_promise<result_set> rp) {
  auto& st = self->state;
  if (st.phase != session_phase::open) {
    rp.deliver(st.ended_error());
    return;
  }
  if (auto problem = detail::transaction_statement_problem(sql); !problem.empty()) {
    rp.deliver(detail::node_error(
        errc::invalid_argument, st.cfg.node_id,
        "inside a transaction, end it with commit / rollback (not a statement): " + problem));
    return;
  }
  send_begin(self);
  ++st.in_flight;
  self->request(st.worker, caf::infinite, execute_atom::value,
                make_job(st, std::move(sql), std::move(params), tx_inside, st.deadline_ns))
      .then(
          [self, rp](result_set& rs) mutable {
            auto& st = self->state;
            --st.in_flight;
            if (st.begin_failed) {
              // Cannot happen short of a broken server; be loud rather than wrong.
              rp.deliver(detail::node_error(errc::query_failed, st.cfg.node_id,
                                            "BEGIN failed (" + st.begin_error +
                                                "); the statement ran outside a transaction"));
              end_with_rollback(self,
                                detail::node_error(errc::query_failed, st.cfg.node_id,
                                                   "BEGIN failed: " + st.begin_error),
                                true);
              return;
            }
            rp.deliver(std::move(rs));
          },
          [self, rp](caf::error& err) mutable {
            --self->state.in_flight;
            on_statement_error(self, err, rp);
          });
}

void commit(self_ptr self, caf::typed_response_promise<lsn> rp) {
  auto& st = self->state;
  if (st.phase != session_phase::open) {
    rp.deliver(st.ended_error());
    if (st.phase == session_phase::done) self->quit(); // the owner is done with it
    return;
  }
  send_begin(self);
  st.phase = session_phase::ending;
  auto node = st.cfg.node_id;
  bool read_only = st.cfg.opts.read_only;
  // COMMIT, then (unless read only) the WAL position, pipelined: one round
  // trip. Answers come in order: the COMMIT's first.
  struct outcome {
    caf::error commit_error;
    bool committed = false;
  };
  auto out = std::make_shared<outcome>();
  auto finish = [self, rp, out](caf::expected<lsn> x) mutable {
    if (!rp.pending()) return;
    if (x)
      rp.deliver(*x);
    else
      rp.deliver(std::move(x.error()));
    release(self, false);
  };
  self->request(st.worker, caf::infinite, execute_atom::value,
                make_job(st, "COMMIT", {}, tx_end, st.deadline_ns))
      .then(
          [self, out, finish, node, read_only](result_set& rs) mutable {
            auto& st = self->state;
            if (rs.command() == "ROLLBACK") {
              // PostgreSQL answers COMMIT of an aborted transaction with ROLLBACK.
              out->commit_error = make_error(
                  errc::query_failed,
                  detail::node_message(node, "transaction rolled back at COMMIT: a statement in "
                                             "it failed; nothing was committed"),
                  st.first_failure_sqlstate.empty() ? std::string{"25P02"}
                                                    : st.first_failure_sqlstate);
            } else if (st.begin_failed) {
              out->commit_error =
                  detail::node_error(errc::query_failed, node, "BEGIN failed: " + st.begin_error);
            } else {
              out->committed = true;
            }
            if (read_only)
              finish(out->committed ? caf::expected<lsn>{lsn{0}}
                                    : caf::expected<lsn>{out->commit_error});
          },
          [out, finish, node, read_only](caf::error& err) mutable {
            auto info = to_error_info(err);
            if (info.code != errc::query_failed) {
              // The COMMIT may or may not have reached the server and run.
              info.message = detail::node_message(
                  node, "COMMIT outcome unknown (the transaction may or may not have been "
                        "committed): " +
                            detail::strip_node_prefix(node, info.message));
            }
            out->commit_error = to_caf_error(info);
            if (read_only) finish(out->commit_error);
          });
  if (read_only) return;
  self->request(st.worker, caf::infinite, execute_atom::value,
                make_job(st,
                         "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
                         "ELSE pg_current_wal_insert_lsn() END)::text",
                         {}, tx_end, st.deadline_ns))
      .then(
          [out, finish, node](result_set& at) mutable {
            if (!out->committed) return finish(out->commit_error);
            try {
              if (at.size() == 1 && at.column_count() == 1 && !at[0].is_null(0))
                return finish(lsn::parse(std::string{at[0].text(0)}));
            } catch (const error&) {
            }
            finish(detail::node_error(errc::internal, node,
                                      "committed, but the WAL position could not be read"));
          },
          [out, finish, node](caf::error& err) mutable {
            if (!out->committed) return finish(out->commit_error);
            auto info = to_error_info(err);
            finish(detail::node_error(info.code, node,
                                      "committed, but the WAL position could not be read: " +
                                          detail::strip_node_prefix(node, info.message)));
          });
}

void rollback(self_ptr self, caf::typed_response_promise<ok_atom> rp) {
  auto& st = self->state;
  switch (st.phase) {
  case session_phase::done:
    rp.deliver(ok_atom::value); // rolled back already (or nothing to roll back)
    self->quit();               // the owner is done with it
    return;
  case session_phase::ending:
    // Our own ROLLBACK runs (deadline, owner, timeout), or a COMMIT.
    st.rollback_waiters.push_back(rp);
    return;
  case session_phase::pinning:
    return; // queued by the caller
  case session_phase::open:
    break;
  }
  st.rollback_waiters.push_back(rp);
  end_with_rollback(
      self,
      detail::node_error(errc::invalid_argument, st.cfg.node_id, "the transaction was rolled back"),
      false);
}

void on_granted(self_ptr self, connection_worker_actor worker) {
  auto& st = self->state;
  if (st.phase == session_phase::done) {
    // Ended while waiting (owner gone, deadline): give it back at once.
    self->send(st.cfg.supervisor, unpin_atom::value, worker);
    self->quit();
    return;
  }
  st.worker = worker;
  st.phase = session_phase::open;
  self->monitor(worker);
  auto queued = std::move(st.queued);
  st.queued.clear();
  for (auto& q : queued) {
    switch (q.what) {
    case queued_request::kind::query:
      run_query(self, std::move(q.sql), std::move(q.params), q.query_rp);
      break;
    case queued_request::kind::commit:
      commit(self, q.commit_rp);
      break;
    case queued_request::kind::rollback:
      rollback(self, q.rollback_rp);
      break;
    }
  }
}

void on_pin_failed(self_ptr self, caf::error& err) {
  auto& st = self->state;
  if (!st.ended) st.ended = err;
  auto queued = std::move(st.queued);
  st.queued.clear();
  for (auto& q : queued) {
    if (q.query_rp.pending()) q.query_rp.deliver(st.ended);
    if (q.commit_rp.pending()) q.commit_rp.deliver(st.ended);
    if (q.rollback_rp.pending()) q.rollback_rp.deliver(ok_atom::value);
  }
  // Stays to answer the owner with the error (see release).
  st.phase = session_phase::done;
  self->delayed_send(self, linger_time, tick_atom::value, linger_tick);
}

session_impl_actor::behavior_type session_behavior(self_ptr self, session_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  auto now = steady_now_ns();
  st.deadline_ns = now + st.cfg.timeout.count();
  st.timeout_ms = duration_cast<milliseconds>(st.cfg.timeout).count();
  if (st.cfg.owner) self->monitor(st.cfg.owner);
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& st = self->state;
    if (st.cfg.owner && dm.source == caf::actor_cast<caf::actor_addr>(st.cfg.owner)) {
      log::info("node {}: transaction owner terminated; rolling back", st.cfg.node_id);
      if (st.phase == session_phase::done) {
        self->quit();
        return;
      }
      end_with_rollback(self,
                        detail::node_error(errc::shutting_down, st.cfg.node_id,
                                           "transaction owner terminated; rolled back"),
                        false);
    } else if (st.worker && dm.source == st.worker.address()) {
      // Answers came first (same sender); what is left has lost its connection.
      if (!st.ended)
        st.ended = detail::node_error(errc::connection_failed, st.cfg.node_id,
                                      "connection lost; the transaction was rolled back");
      st.worker = nullptr;
      if (st.phase == session_phase::open || st.phase == session_phase::ending) release(self, true);
    }
  });
  // The deadline: an idle session past it rolls back (a running statement
  // is answered query_timeout by its worker at the same time).
  self->delayed_send(self, caf::timespan{st.deadline_ns - now}, tick_atom::value, deadline_tick);
  self->request(st.cfg.supervisor, caf::infinite, pin_atom::value,
                make_job(st, {}, {}, tx_inside, st.deadline_ns))
      .then([self](connection_worker_actor& w) { on_granted(self, std::move(w)); },
            [self](caf::error& err) { on_pin_failed(self, err); });
  return {
      [=](query_atom, std::string& sql, std::vector<param>& params) -> caf::result<result_set> {
        auto& st = self->state;
        auto rp = self->make_response_promise<result_set>();
        if (st.phase == session_phase::pinning) {
          queued_request q;
          q.what = queued_request::kind::query;
          q.sql = std::move(sql);
          q.params = std::move(params);
          q.query_rp = rp;
          st.queued.push_back(std::move(q));
        } else {
          run_query(self, std::move(sql), std::move(params), rp);
        }
        return rp;
      },
      [=](commit_atom) -> caf::result<lsn> {
        auto& st = self->state;
        auto rp = self->make_response_promise<lsn>();
        if (st.phase == session_phase::pinning) {
          queued_request q;
          q.what = queued_request::kind::commit;
          q.commit_rp = rp;
          st.queued.push_back(std::move(q));
        } else {
          commit(self, rp);
        }
        return rp;
      },
      [=](rollback_atom) -> caf::result<ok_atom> {
        auto& st = self->state;
        auto rp = self->make_response_promise<ok_atom>();
        if (st.phase == session_phase::pinning) {
          queued_request q;
          q.what = queued_request::kind::rollback;
          q.rollback_rp = rp;
          st.queued.push_back(std::move(q));
        } else {
          rollback(self, rp);
        }
        return rp;
      },
      [=](tick_atom, std::uint64_t which) {
        auto& st = self->state;
        if (which == linger_tick) {
          if (st.phase == session_phase::done) self->quit();
          return;
        }
        if (st.phase != session_phase::open || st.in_flight > 0) return;
        log::debug("node {}: transaction deadline passed while idle; rolling back", st.cfg.node_id);
        end_with_rollback(self,
                          detail::node_error(errc::query_timeout, st.cfg.node_id,
                                             "transaction deadline of " +
                                                 std::to_string(st.timeout_ms) +
                                                 " ms passed; rolled back"),
                          true);
      },
  };
}

} // namespace

transaction_session_actor spawn_transaction_session(caf::actor_system& sys, session_config cfg) {
  auto hdl = sys.spawn(session_behavior, std::move(cfg));
  return caf::actor_cast<transaction_session_actor>(hdl);
}

} // namespace pgcm
