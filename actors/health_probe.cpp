#include "pgcm/actors/health_probe.hpp"

#include <algorithm>
#include <random>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "core_actor.hpp"
#include "node_error.hpp"
#include "pgcm/actors/connection_worker.hpp"
#include "pgcm/messages/error.hpp"
#include "reactor.hpp"
#include "tick_timer.hpp"

namespace pgcm {

namespace {

using namespace std::chrono;

struct probe_data {
  static inline const char* name = "pgcm.core.health_probe"; // a name only (logs)
  probe_config cfg;
  node_supervisor_actor supervisor;
  connection_worker_actor worker;
  worker_state worker_st = worker_state::closed;
  bool probing = false;
  std::int64_t probe_deadline_ns = 0;
  detail::tick_timer timer;
  std::uint64_t probe_seq = 0;
  /// The probe_seq of the probe that opened the current worker's connection.
  std::uint64_t worker_born_seq = 0;
  std::minstd_rand rng{std::random_device{}()};
};

// A core actor: may run inline (src/core_actor.hpp, docs/threading.md I5).
using self_ptr = detail::core_pointer<health_probe_actor, probe_data>;

constexpr std::int64_t lost_reply_margin_ns = 1'000'000'000;

void schedule_next(self_ptr self) {
  auto& st = self->state;
  auto interval = duration_cast<nanoseconds>(st.cfg.interval).count();
  std::uniform_int_distribution<std::int64_t> jitter{0, interval / 10};
  st.timer.arm_after(self, tick_atom::value, nanoseconds{interval - jitter(st.rng)});
}

void report(self_ptr self, probe_result r) {
  auto& st = self->state;
  st.probing = false;
  self->send(st.supervisor, probe_atom::value, std::move(r));
}

void drop_worker(self_ptr self) {
  auto& st = self->state;
  if (st.worker) {
    self->send(st.worker, drain_atom::value, caf::timespan{0});
    st.worker = nullptr;
  }
  st.worker_st = worker_state::closed;
}

void open_worker(self_ptr self);

// One statement per probe: role, WAL positions, last replayed commit time
// and timeline (a primary's current timeline is in its WAL file name; the
// checkpoint's lags behind a promotion); the system identifier only on a
// connection's first probe. Works for any role: pg_stat_wal_receiver shows
// NULLs without pg_read_all_stats, then the checkpoint's timeline stands in.
const std::string probe_sql =
    "SELECT pg_is_in_recovery(), "
    "(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
    "ELSE pg_current_wal_lsn() END)::text, "
    "pg_last_wal_receive_lsn()::text, "
    "(extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000000)::int8, "
    "CASE WHEN pg_is_in_recovery() THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver), "
    "(SELECT timeline_id FROM pg_control_checkpoint())) "
    "ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END";
const std::string probe_sql_first =
    probe_sql + ", (SELECT system_identifier FROM pg_control_system())";

/// Reads the probe statement's row into `r`; false if it is not what was asked.
bool read_facts(const result_set& rs, probe_result& r) {
  if (rs.size() != 1 || rs.column_count() < 5 || rs[0].is_null(0)) return false;
  auto row = rs[0];
  try {
    r.role = row.text(0) == "t" ? node_role::standby : node_role::primary;
    if (!row.is_null(1)) r.wal_lsn = lsn::parse(std::string{row.text(1)}).value;
    if (!row.is_null(2)) r.receive_lsn = lsn::parse(std::string{row.text(2)}).value;
    if (!row.is_null(3)) r.last_replay_us = row.get<std::int64_t>(3);
    if (!row.is_null(4)) r.timeline = static_cast<std::uint32_t>(row.get<std::int64_t>(4));
    if (rs.column_count() > 5 && !row.is_null(5))
      r.system_identifier = std::stoull(std::string{row.text(5)});
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

void send_query(self_ptr self) {
  auto& st = self->state;
  query_job job;
  job.sql = st.worker_born_seq == st.probe_seq ? probe_sql_first : probe_sql;
  job.deadline_ns = st.probe_deadline_ns;
  job.timeout_ms = st.cfg.timeout.count();
  auto sent_ns = steady_now_ns();
  auto seq = st.probe_seq;
  // The worker answers by the deadline. No CAF request timeout (two trips to
  // CAF's clock thread per probe): the next tick guards against a lost reply.
  self->request(st.worker, caf::infinite, execute_atom::value, std::move(job))
      .then(
          [=](const result_set& rs) {
            auto& st = self->state;
            if (seq != st.probe_seq) return;
            probe_result r;
            r.ok = true;
            r.latency_us = (steady_now_ns() - sent_ns) / 1000;
            if (!read_facts(rs, r)) {
              r = probe_result{};
              r.error =
                  detail::node_message(st.cfg.node_id, "health probe got an unexpected answer");
            }
            report(self, std::move(r));
          },
          [=](caf::error& err) {
            auto& st = self->state;
            if (seq != st.probe_seq) return;
            auto info = to_error_info(err, "node " + st.cfg.node_id); // context of CAF's errors
            // Our own session was ended (pg_terminate_backend: 57P01), also
            // while the probe statement ran: the connection is gone.
            bool session_ended = info.sqlstate && *info.sqlstate == "57P01";
            if (info.code != errc::query_failed || session_ended) {
              drop_worker(self); // timed out or broken: start over on a fresh connection
              if ((info.code == errc::connection_failed || session_ended) &&
                  st.worker_born_seq != seq && steady_now_ns() < st.probe_deadline_ns) {
                // A connection kept from an earlier probe broke (the backend was
                // terminated, a proxy dropped it while idle): that says nothing
                // about the node now. Ask again on a fresh connection, within the
                // same deadline, before counting a failure (a node shutting down
                // then refuses the new connection, and that counts).
                open_worker(self);
                return;
              }
            }
            report(self, probe_result{false, node_role::unknown, 0, info.message});
          });
}

void start_probe(self_ptr self) {
  auto& st = self->state;
  if (st.probing) return;
  st.probing = true;
  ++st.probe_seq;
  st.probe_deadline_ns = steady_now_ns() + duration_cast<nanoseconds>(st.cfg.timeout).count();
  if (st.worker && st.worker_st == worker_state::ready) {
    send_query(self);
    return;
  }
  drop_worker(self);
  open_worker(self);
}

void open_worker(self_ptr self) {
  auto& st = self->state;
  worker_config wc;
  wc.node_id = st.cfg.node_id;
  wc.worker_id = 0;
  wc.params = st.cfg.params;
  wc.io = st.cfg.io;
  // Connecting is part of the probe: it gets what is left of the deadline.
  auto left_ms = (st.probe_deadline_ns - steady_now_ns()) / 1'000'000;
  wc.connect_timeout = std::chrono::milliseconds{std::max<std::int64_t>(left_ms, 1)};
  wc.statement_cache = 1;
  st.worker = spawn_connection_worker(self->system(), self, wc);
  st.worker_st = worker_state::connecting;
  st.worker_born_seq = st.probe_seq;
}

health_probe_actor::behavior_type health_probe(self_ptr self, node_supervisor_actor supervisor,
                                               probe_config cfg) {
  self->state.cfg = std::move(cfg);
  self->state.supervisor = std::move(supervisor);
  self->attach_functor([self](const caf::error&) {
    if (self->state.worker) caf::anon_send(self->state.worker, drain_atom::value, caf::timespan{0});
  });
  start_probe(self);
  schedule_next(self);
  return {
      [=](report_atom, const worker_report& r) {
        auto& st = self->state;
        if (!st.worker || r.worker_id != 0) return;
        if (caf::actor_cast<caf::actor_addr>(self->current_sender()) != st.worker.address())
          return; // a report of a worker we dropped already
        auto before = st.worker_st;
        st.worker_st = r.state;
        if (r.state == worker_state::ready && before == worker_state::connecting && st.probing) {
          send_query(self);
        } else if (r.state == worker_state::failed || r.state == worker_state::closed) {
          st.worker = nullptr;
          if (before == worker_state::connecting && st.probing)
            report(self, probe_result{false, node_role::unknown, 0, r.error});
        }
      },
      [=](tick_atom, std::uint64_t gen) {
        auto& st = self->state;
        if (!st.timer.fired(gen)) return;
        if (st.probing && st.worker_st == worker_state::ready &&
            steady_now_ns() > st.probe_deadline_ns + lost_reply_margin_ns) {
          // The worker never answered (it answers by the deadline): a lost
          // message. Start over on a fresh connection.
          ++st.probe_seq;
          drop_worker(self);
          report(self,
                 probe_result{false, node_role::unknown, 0,
                              detail::node_message(st.cfg.node_id, "health probe got no answer")});
        }
        start_probe(self);
        schedule_next(self);
      },
      [=](probe_atom, caf::timespan interval) {
        auto& st = self->state;
        auto next = duration_cast<milliseconds>(interval);
        if (next.count() <= 0 || next == st.cfg.interval) return;
        st.cfg.interval = next;
        schedule_next(self); // the old tick goes stale
      },
      [=](probe_atom) {
        // Probe now; a probe already running answers for this request too.
        if (self->state.probing) return;
        start_probe(self);
        schedule_next(self); // the old tick goes stale
      },
  };
}

} // namespace

health_probe_actor spawn_health_probe(caf::actor_system& sys, node_supervisor_actor supervisor,
                                      probe_config cfg) {
  return sys.spawn(health_probe, std::move(supervisor), std::move(cfg));
}

} // namespace pgcm
