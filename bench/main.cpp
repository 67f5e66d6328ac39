// pgcm_bench: pgcm next to the best plain-libpq client for the same work,
// measured in the same run, alternating. See bench/README.md.

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "common.hpp"
#include "node_ref.hpp"
#include "pgcm_side.hpp"
#include "raw.hpp"

namespace bench {
namespace {

// -- options ---------------------------------------------------------------------

struct options {
  std::string env_file;
  double duration = 1.0; // seconds per contender per round
  int rounds = 5;
  double warmup = -1; // seconds per contender before the rounds; -1: duration/3
  std::vector<std::string> only;
  std::string policy = "pgcm";
  int caf_threads = 0;
  bool json = false;
  std::string json_file;
  bool quick = false;
  double scale_seconds = -1; // -1: 30 (10 with --quick)
  double scale_probe = 5;
  int scale_nodes = 100;
  bool list = false;
  std::string log_level = "warn";
  bool raw_simple = false;
  bool diag = false;         // add diagnostic pgcm variants to the workloads
  std::string side = "both"; // pgcm / raw: measure one side only (profiling)
  std::string child;         // internal: scale-pgcm / scale-raw
};

const char* usage_text =
    R"(usage: pgcm_bench --env FILE [options]

Measures pgcm and a raw-libpq reference for each workload in the same run,
alternating them round by round, and prints throughput, p50/p99 latency and
the ratio pgcm/reference. Progress goes to stderr, the summary to stdout.

  --env FILE          cluster env file written by scripts/pg-cluster or
                      scripts/test-cluster-up (default: $PGCM_BENCH_ENV,
                      then $PGCM_TEST_ENV_FILE)
  --duration SEC      length of one measurement window (default 1; quick 0.3)
  --rounds N          windows per contender, interleaved (default 5; quick 3)
  --warmup SEC        unmeasured run per contender before the rounds
                      (default duration/3)
  --only W[,W...]     run only these workloads: a name, a name prefix ending
                      at a dot, or a prefix ending in * (e.g. --only
                      select1.c16,query_all,startup or --only 'slots.c*')
  --policy P          CAF scheduler of pgcm's actor system: pgcm (default,
                      what the facade uses: pgcm::use_pgcm_scheduler),
                      sharing or stealing (CAF's policies)
  --caf-threads N     scheduler.max-threads (default: CAF's, max(4, cores))
  --quick             shorter run (duration 0.3, 3 rounds, scale 10 s)
  --scale-seconds S   idle-CPU observation of the scale workload (default 30)
  --scale-probe S     probe interval of that observation (default 5)
  --scale-nodes N     nodes of the scale workload (default 100)
  --raw-simple        raw thread references use PQexec (simple protocol)
                      instead of prepared statements
  --diag              add diagnostic pgcm contenders to the facade workloads
                      (pgcm-actor: one requester actor; pgcm-scoped-per-thread:
                      threads reusing one scoped_actor) and break CPU time and
                      context switches per op down by thread group
  --log-level L       pgcm's log level (default warn)
  --json              print the results as JSON on stdout (the table then
                      goes to stderr)
  --json-file FILE    also write the JSON to FILE
  --side S            both (default), or only pgcm / only raw (for profiling
                      one side with perf or callgrind; no ratios then)
  --list              list the workloads and exit
  --help

The default.* workloads also run node-postgres (bench/node_pg_ref.js) when
node and the pg package are found: node on PATH or $PGCM_BENCH_NODE, pg via
NODE_PATH = $PGCM_BENCH_NODE_MODULES, else <build>/node-ref/node_modules
(scripts/bench installs it there); else they say why it was skipped.
)";

double parse_double(const std::string& opt, const char* v) {
  char* end = nullptr;
  double d = std::strtod(v, &end);
  if (end == v || *end != 0 || !(d >= 0)) throw std::runtime_error(opt + ": not a number: " + v);
  return d;
}

int parse_int(const std::string& opt, const char* v) {
  char* end = nullptr;
  long d = std::strtol(v, &end, 10);
  if (end == v || *end != 0 || d < 0) throw std::runtime_error(opt + ": not a count: " + v);
  return static_cast<int>(d);
}

options parse(int argc, char** argv) {
  options o;
  bool dur_set = false, rounds_set = false, scale_set = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> const char* {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::fputs(usage_text, stdout);
      std::exit(0);
    } else if (a == "--env") {
      o.env_file = val();
    } else if (a == "--duration") {
      o.duration = parse_double(a, val());
      dur_set = true;
    } else if (a == "--rounds") {
      o.rounds = std::max(1, parse_int(a, val()));
      rounds_set = true;
    } else if (a == "--warmup") {
      o.warmup = parse_double(a, val());
    } else if (a == "--only") {
      std::stringstream ss{val()};
      std::string w;
      while (std::getline(ss, w, ','))
        if (!w.empty()) o.only.push_back(w);
    } else if (a == "--policy") {
      o.policy = val();
      if (o.policy != "pgcm" && o.policy != "sharing" && o.policy != "stealing")
        throw std::runtime_error("--policy must be pgcm, sharing or stealing");
    } else if (a == "--caf-threads") {
      o.caf_threads = parse_int(a, val());
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--scale-seconds") {
      o.scale_seconds = parse_double(a, val());
      scale_set = true;
    } else if (a == "--scale-probe") {
      o.scale_probe = std::max(0.1, parse_double(a, val()));
    } else if (a == "--scale-nodes") {
      o.scale_nodes = std::max(1, parse_int(a, val()));
    } else if (a == "--diag") {
      o.diag = true;
    } else if (a == "--raw-simple") {
      o.raw_simple = true;
    } else if (a == "--log-level") {
      o.log_level = val();
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--json-file") {
      o.json_file = val();
    } else if (a == "--list") {
      o.list = true;
    } else if (a == "--side") {
      o.side = val();
      if (o.side != "both" && o.side != "pgcm" && o.side != "raw")
        throw std::runtime_error("--side must be both, pgcm or raw");
    } else if (a == "--child") {
      o.child = val();
    } else {
      throw std::runtime_error("unknown option " + a + " (see --help)");
    }
  }
  if (o.quick) {
    if (!dur_set) o.duration = 0.3;
    if (!rounds_set) o.rounds = 3;
    if (!scale_set) o.scale_seconds = 10;
  }
  if (o.scale_seconds < 0) o.scale_seconds = 30;
  if (o.warmup < 0) o.warmup = o.duration / 3;
  if (o.env_file.empty()) {
    for (const char* var : {"PGCM_BENCH_ENV", "PGCM_TEST_ENV_FILE"})
      if (const char* v = std::getenv(var); v && *v) {
        o.env_file = v;
        break;
      }
  }
  return o;
}

// -- workloads -------------------------------------------------------------------

enum class kind { throughput, duration, scale };

struct workload {
  std::string name;
  std::string title;
  kind k = kind::throughput;
  std::string unit = "q/s";
  std::function<std::vector<contender_ptr>()> make; // [0] pgcm, [1] primary reference, [2..] extra
  // Targets (of the issue); unset when <= 0.
  double min_ratio = 0;       // throughput ratio pgcm/reference >= this
  std::size_t ratio_ref = 1;  // the contender min_ratio compares with (1: the reference)
  double max_p50_diff_us = 0; // p50(pgcm) - p50(reference) <= this
  double max_time_ratio = 0;  // duration ratio pgcm/reference <= this
  double max_cpu_ratio = 0;   // client CPU per op pgcm/reference <= this
  /// Further throughput targets against named extra references: pgcm/that
  /// contender >= the value (not met when that contender could not run).
  std::vector<std::pair<std::string, double>> min_ratio_vs;
  /// Printed under the workload's rows (e.g. a reference that is not available).
  std::vector<std::string> notes;
};

std::vector<workload> make_workloads(const cluster_info& c, pgcm_runtime& rt, const options& o) {
  std::vector<workload> ws;
  const server primary = c.servers[0];
  std::vector<server> three(c.servers.begin(),
                            c.servers.begin() + std::min<std::size_t>(3, c.servers.size()));
  const bool prepared = !o.raw_simple;
  pool_settings pool; // min 1, max 10, pipeline depth 8, statement cache 256

  for (auto [qname, sql] : {std::pair<std::string, std::string>{"select1", select1_sql},
                            std::pair<std::string, std::string>{"slots", slots_sql}}) {
    for (int n : {1, 4, 16, 64}) {
      workload w;
      w.name = qname + ".c" + std::to_string(n);
      w.title = "single node, " +
                std::string{qname == "select1" ? "SELECT 1" : "replication-slots query"} + ", " +
                std::to_string(n) + " in flight, pool max 10, blocking facade";
      w.make = [&c, &rt, primary, sql = sql, n, prepared, pool, diag = o.diag] {
        std::vector<contender_ptr> v;
        v.push_back(make_pgcm_single(rt, c, primary, sql, n, pgcm_api::facade, pool));
        v.push_back(make_raw_threads(c, primary, sql, std::min(n, 10), prepared));
        // The floor of a blocking pool: n callers sharing 10 connections,
        // taking turns, or pipelined by one I/O thread.
        if (n > 10) {
          v.push_back(make_raw_callers(c, primary, sql, n, 10, 1));
          v.push_back(make_raw_callers(c, primary, sql, n, 10, 8));
        }
        if (diag) {
          v.push_back(make_pgcm_single(rt, c, primary, sql, n, pgcm_api::scoped, pool));
          v.push_back(make_pgcm_single(rt, c, primary, sql, n, pgcm_api::actor, pool));
        }
        return v;
      };
      // Issue 11: >= 0.85x raw at 16 in flight; client CPU per query
      // <= 1.5x raw at 4 and at 16 in flight.
      if (n == 16) w.min_ratio = 0.85;
      if (n == 4 || n == 16) w.max_cpu_ratio = 1.5;
      if (n == 1) w.max_p50_diff_us = 25;
      ws.push_back(std::move(w));
    }
  }
  {
    // Transactions (issue 12): BEGIN; UPDATE; COMMIT at 16 in flight.
    workload w;
    w.name = "tx.c16";
    w.title = "single node, BEGIN; UPDATE bench_tx (own row); COMMIT, 16 in flight, pool max 16, "
              "with_transaction";
    w.make = [&c, &rt, primary, pool] {
      const std::string update = "UPDATE bench_tx SET v = v + 1 WHERE id = $1";
      auto p = pool;
      p.max = 16; // a transaction holds its connection: one per client, as raw
      std::vector<contender_ptr> v;
      v.push_back(make_pgcm_tx(rt, c, primary, update, 16, p));
      v.push_back(make_raw_tx(c, primary, update, 16));
      return v;
    };
    ws.push_back(std::move(w));
  }
  for (int n : {1, 16}) {
    workload w;
    w.name = "select1.c" + std::to_string(n) + ".actor";
    w.title = "single node, SELECT 1, " + std::to_string(n) + " in flight, pool max 10, actor API";
    w.make = [&c, &rt, primary, n, prepared, pool] {
      std::vector<contender_ptr> v;
      v.push_back(make_pgcm_single(rt, c, primary, select1_sql, n, pgcm_api::actor, pool));
      v.push_back(make_raw_threads(c, primary, select1_sql, std::min(n, 10), prepared));
      return v;
    };
    if (n == 16) w.min_ratio = 0.8;
    if (n == 1) w.max_p50_diff_us = 25;
    ws.push_back(std::move(w));
  }
  {
    // The actor API's old path, kept measurable: queries to the manager,
    // which delegates them to the node (one hop more than the node handle).
    workload w;
    w.name = "select1.c16.actor-via-manager";
    w.title = "single node, SELECT 1, 16 in flight, pool max 10, actor API through the manager";
    w.make = [&c, &rt, primary, prepared, pool] {
      std::vector<contender_ptr> v;
      v.push_back(
          make_pgcm_single(rt, c, primary, select1_sql, 16, pgcm_api::actor_via_manager, pool));
      v.push_back(make_raw_threads(c, primary, select1_sql, 10, prepared));
      return v;
    };
    ws.push_back(std::move(w));
  }
  for (auto api : {pgcm_api::facade, pgcm_api::actor}) {
    for (int n : {1, 16}) {
      workload w;
      w.name = "query_all.c" + std::to_string(n) + (api == pgcm_api::actor ? ".actor" : "");
      w.title = "query_all over " + std::to_string(three.size()) + " nodes, slots query, " +
                std::to_string(n) + " in flight, " +
                (api == pgcm_api::actor ? "actor API" : "blocking facade");
      w.unit = "rounds/s";
      w.make = [&c, &rt, three, n, api, pool, diag = o.diag] {
        std::vector<contender_ptr> v;
        v.push_back(make_pgcm_all(rt, c, three, slots_sql, n, api, pool));
        v.push_back(make_raw_poll(c, three, slots_sql, 1, n, 1, "raw-poll-fanout"));
        if (n > 1)
          v.push_back(
              make_raw_poll(c, three, slots_sql, std::min(n, 10), n, 1,
                            "raw-poll-fanout-" + std::to_string(std::min(n, 10)) + "/node"));
        // The floor of a blocking fan-out: n callers sharing 10 connections per node.
        if (n > 1 && api == pgcm_api::facade)
          v.push_back(make_raw_callers_fanout(c, three, slots_sql, n, std::min(n, 10)));
        if (diag && api == pgcm_api::facade)
          v.push_back(make_pgcm_all(rt, c, three, slots_sql, n, pgcm_api::scoped, pool));
        return v;
      };
      // Issue 11: >= 0.9x the reference with as many connections as pgcm may open.
      if (n == 16) {
        w.min_ratio = 0.9;
        w.ratio_ref = 2;
      }
      if (n == 1) w.max_p50_diff_us = 25;
      ws.push_back(std::move(w));
    }
  }
  if (c.servers.size() >= 2) {
    // Issue 10: a routed query costs no more than 5 us of client CPU over the
    // same node by name (compare the two rows' cpu/op).
    std::vector<server> two{c.servers[0], c.servers[1]};
    for (int n : {1, 16}) {
      workload w;
      w.name = "routed.c" + std::to_string(n);
      w.title = "routed query(route{standby}) vs query(\"" + two[1].name +
                "\") by name, SELECT 1, " + std::to_string(n) +
                " in flight, pool max 10, blocking facade (compare cpu/op)";
      w.make = [&c, &rt, two, n, pool] {
        std::vector<contender_ptr> v;
        v.push_back(make_pgcm_routed(rt, c, two, select1_sql, n, true, pool));
        v.push_back(make_pgcm_routed(rt, c, two, select1_sql, n, false, pool));
        return v;
      };
      ws.push_back(std::move(w));
    }
  }
  for (auto api : {pgcm_api::facade, pgcm_api::actor}) {
    workload w;
    w.name = std::string{"overflow.c64"} + (api == pgcm_api::actor ? ".actor" : "");
    w.title =
        std::string{"single node, SELECT 1, 64 in flight on 10 connections (pgcm pipelines), "} +
        (api == pgcm_api::actor ? "actor API" : "blocking facade");
    w.make = [&c, &rt, primary, api, pool] {
      std::vector<contender_ptr> v;
      v.push_back(make_pgcm_single(rt, c, primary, select1_sql, 64, api, pool));
      v.push_back(make_raw_poll(c, {primary}, select1_sql, 10, 64, 1, "raw-poll-queue"));
      v.push_back(make_raw_poll(c, {primary}, select1_sql, 10, 64, 8, "raw-poll-pipelined"));
      // The floor of a blocking API that pipelines: 64 callers, one I/O thread.
      if (api == pgcm_api::facade)
        v.push_back(make_raw_callers(c, primary, select1_sql, 64, 10, 8));
      return v;
    };
    w.min_ratio = 1.5;
    ws.push_back(std::move(w));
  }
  for (auto api : {pgcm_api::facade, pgcm_api::actor}) {
    workload w;
    w.name = std::string{"waiting.c64"} + (api == pgcm_api::actor ? ".actor" : "");
    w.title = std::string{"single node, SELECT 1, 64 in flight on 10 connections, pipeline_depth 1 "
                          "(requests wait in pgcm's queue), "} +
              (api == pgcm_api::actor ? "actor API" : "blocking facade");
    w.make = [&c, &rt, primary, api, pool] {
      auto p = pool;
      p.pipeline_depth = 1;
      std::vector<contender_ptr> v;
      v.push_back(make_pgcm_single(rt, c, primary, select1_sql, 64, api, p));
      v.push_back(make_raw_poll(c, {primary}, select1_sql, 10, 64, 1, "raw-poll-queue"));
      return v;
    };
    w.min_ratio = 0.8;
    ws.push_back(std::move(w));
  }
  {
    // Issue 11's table, as a new user runs it: default options (pool max 10),
    // 16 threads, against 16 raw threads with a connection each and the
    // node-postgres pool.
    const auto& npg = find_node_pg();
    const int node_pool_max = 10; // pgcm's default pool_config::max
    for (bool all : {false, true}) {
      workload w;
      w.name = all ? "default.slots.c16" : "default.select1.c16";
      w.title = all ? "query_all of the replication-slots query over " +
                          std::to_string(three.size()) +
                          " nodes, 16 threads, default options (pool max 10), blocking facade"
                    : "SELECT 1 on the primary, 16 threads, default options (pool max 10), "
                      "blocking facade";
      if (all) w.unit = "rounds/s";
      w.make = [&c, &rt, primary, three, all, node_ok = npg.available, node_pool_max] {
        std::vector<contender_ptr> v;
        if (all) {
          v.push_back(make_pgcm_default(rt, c, three, slots_sql, 16, true));
          v.push_back(make_raw_poll(c, three, slots_sql, 10, 16, 1, "raw-poll-fanout-10/node"));
          v.push_back(make_raw_callers_fanout(c, three, slots_sql, 16, 10));
        } else {
          v.push_back(make_pgcm_default(rt, c, {primary}, select1_sql, 16, false));
          v.push_back(make_raw_threads(c, primary, select1_sql, 16, false, "raw-threads-16"));
        }
        if (node_ok)
          v.push_back(all ? make_node_pg(c, three, slots_sql, 16, node_pool_max, true)
                          : make_node_pg(c, {primary}, select1_sql, 16, node_pool_max, false));
        return v;
      };
      w.min_ratio = 0.8;
      w.min_ratio_vs.emplace_back("node-pg", 1.6);
      if (!npg.available) w.notes.push_back("node-pg: not available (" + npg.reason + ")");
      ws.push_back(std::move(w));
    }
  }
  {
    workload w;
    w.name = "startup";
    w.title = "open " + std::to_string(three.size()) + " nodes x 10 connections";
    w.k = kind::duration;
    w.unit = "ms";
    w.make = [&c, &rt, three] {
      std::vector<contender_ptr> v;
      v.push_back(make_pgcm_startup(rt, c, three, 10));
      v.push_back(make_raw_startup(c, three, 10));
      return v;
    };
    w.max_time_ratio = 1.0;
    ws.push_back(std::move(w));
  }
  {
    workload w;
    w.name = "scale";
    w.title = std::to_string(o.scale_nodes) + " nodes on the " + std::to_string(c.servers.size()) +
              " servers, pool min=max=1: RSS, threads, idle CPU over " +
              std::to_string(static_cast<int>(o.scale_seconds)) + " s";
    w.k = kind::scale;
    w.unit = "";
    ws.push_back(std::move(w));
  }
  return ws;
}

bool selected(const options& o, const std::string& name) {
  if (o.only.empty()) return true;
  for (auto& p : o.only) {
    if (!p.empty() && p.back() == '*') {
      if (name.compare(0, p.size() - 1, p, 0, p.size() - 1) == 0) return true;
    } else if (name == p || name.rfind(p + ".", 0) == 0) {
      return true;
    }
  }
  return false;
}

// -- results ---------------------------------------------------------------------

struct round_stats {
  std::uint64_t ops = 0, errors = 0;
  double seconds = 0;
  double value = 0; // throughput (ops/s) or duration (ms)
  double p50_us = 0, p99_us = 0;
  // Whole-process CPU time and context switches during the window, per op
  // (the other contenders are idle meanwhile).
  double cpu_us_per_op = 0, ctxsw_per_op = 0;
  std::vector<std::pair<std::string, double>> extra;
};

struct contender_result {
  std::string name, describe;
  std::vector<round_stats> rounds;
  double value = 0, p50_us = 0, p99_us = 0; // medians over rounds
  double cpu_us_per_op = 0, ctxsw_per_op = 0;
  // --diag: per thread group, summed over the rounds.
  std::vector<std::pair<std::string, proc_usage>> groups;
  std::uint64_t group_ops = 0;
  std::uint64_t errors = 0;
  std::string first_error;
};

struct scale_side {
  bool ok = false;
  double sockets = 0, rss_base = 0, rss_system = 0, rss_nodes = 0;
  double threads_base = 0, threads_system = 0, threads_nodes = 0;
  double cpu_pct = 0, cpu_max = 0, startup_ms = 0, healthy = -1;
  std::string raw_json;
};

struct workload_result {
  std::string name, title, unit;
  kind k = kind::throughput;
  bool failed = false;
  std::string failure;
  std::vector<contender_result> contenders;
  std::vector<double> ratio_vs; // per contender: its value / the reference's, median over rounds
  double p50_diff_us = 0;       // vs the primary reference
  /// pgcm / each named extra reference of min_ratio_vs, median over rounds
  /// (NaN when that contender did not run).
  std::vector<std::pair<std::string, double>> pgcm_ratio_vs;
  std::vector<std::string> notes;
  // target
  std::string target_text;
  bool has_target = false, met = false;
  scale_side scale_pgcm, scale_raw;
};

round_stats summarize(window_result& w, kind k) {
  round_stats r;
  r.ops = w.ops;
  r.errors = w.errors;
  r.seconds = w.seconds;
  r.extra = w.extra;
  std::sort(w.lat_ns.begin(), w.lat_ns.end());
  r.p50_us = percentile(w.lat_ns, 50) / 1e3;
  r.p99_us = percentile(w.lat_ns, 99) / 1e3;
  if (k == kind::duration)
    r.value = w.lat_ns.empty() ? 0 : static_cast<double>(w.lat_ns[0]) / 1e6;
  else
    r.value = w.seconds > 0 ? static_cast<double>(w.ops) / w.seconds : 0;
  return r;
}

std::string fmt(double v, int prec = 0) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", prec, v);
  return buf;
}

std::string fmt_value(double v, kind k) {
  return k == kind::duration ? fmt(v, 1) : fmt(v, 0);
}

void progress(const char* f, ...) __attribute__((format(printf, 1, 2)));
void progress(const char* f, ...) {
  va_list ap;
  va_start(ap, f);
  std::vfprintf(stderr, f, ap);
  va_end(ap);
  std::fflush(stderr);
}

workload_result run_measured(const workload& w, const options& o) {
  workload_result res;
  res.name = w.name;
  res.title = w.title;
  res.unit = w.unit;
  res.k = w.k;
  res.notes = w.notes;
  progress("== %s: %s\n", w.name.c_str(), w.title.c_str());
  for (auto& n : w.notes)
    progress("   %s\n", n.c_str());
  std::vector<contender_ptr> cs;
  try {
    cs = w.make();
    if (o.side == "pgcm")
      cs.resize(1);
    else if (o.side == "raw")
      cs.erase(cs.begin());
    for (auto& c : cs) {
      progress("   %-24s %s\n", c->name().c_str(), c->describe().c_str());
      contender_result cr;
      cr.name = c->name();
      cr.describe = c->describe();
      res.contenders.push_back(cr);
      c->setup();
    }
    auto d = std::chrono::duration_cast<nanoseconds>(std::chrono::duration<double>(o.duration));
    if (w.k == kind::throughput && o.warmup > 0) {
      auto wd = std::chrono::duration_cast<nanoseconds>(std::chrono::duration<double>(o.warmup));
      for (auto& c : cs)
        (void)c->run(wd);
    }
    const auto n = cs.size();
    int rounds = w.k == kind::duration ? std::max(o.rounds, 5) : o.rounds;
    for (int r = 0; r < rounds; ++r) {
      progress("   round %d/%d:", r + 1, rounds);
      std::vector<round_stats> this_round(n);
      for (std::size_t k = 0; k < n; ++k) {
        auto i = (k + static_cast<std::size_t>(r)) % n; // alternate who goes first
        thread_snapshot th0, th1;
        if (o.diag) th0 = snapshot_threads();
        auto u0 = usage_now();
        auto wr = cs[i]->run(d);
        auto u1 = usage_now();
        if (o.diag) {
          th1 = snapshot_threads();
          auto& acc = res.contenders[i].groups;
          for (auto& [gname, u] : group_usage(th0, th1, u0, u1)) {
            auto it =
                std::find_if(acc.begin(), acc.end(), [&](auto& x) { return x.first == gname; });
            if (it == acc.end())
              acc.emplace_back(gname, u);
            else {
              it->second.cpu_ns += u.cpu_ns;
              it->second.ctxsw += u.ctxsw;
            }
          }
          res.contenders[i].group_ops += wr.ops;
        }
        auto& cr = res.contenders[i];
        if (wr.errors > 0 && cr.first_error.empty()) cr.first_error = wr.first_error;
        this_round[i] = summarize(wr, w.k);
        if (wr.ops > 0) {
          // A helper process's (node-pg's) CPU and switches count as client side too.
          this_round[i].cpu_us_per_op =
              static_cast<double>(u1.cpu_ns - u0.cpu_ns + wr.child_cpu_ns) / 1e3 /
              static_cast<double>(wr.ops);
          this_round[i].ctxsw_per_op = static_cast<double>(u1.ctxsw - u0.ctxsw + wr.child_ctxsw) /
                                       static_cast<double>(wr.ops);
        }
      }
      for (std::size_t i = 0; i < n; ++i) {
        auto& s = this_round[i];
        progress("  %s %s %s %s p50 %s p99 %s us%s", i ? "|" : "", res.contenders[i].name.c_str(),
                 fmt_value(s.value, w.k).c_str(), w.unit.c_str(), fmt(s.p50_us, 1).c_str(),
                 (fmt(s.p99_us, 1)).c_str(),
                 s.errors ? (" ERRORS " + std::to_string(s.errors)).c_str() : "");
        res.contenders[i].rounds.push_back(s);
      }
      progress("\n");
    }
  } catch (const std::exception& e) {
    res.failed = true;
    res.failure = e.what();
    progress("   FAILED: %s\n", e.what());
  }
  for (auto it = cs.rbegin(); it != cs.rend(); ++it) {
    try {
      (*it)->teardown();
    } catch (const std::exception& e) {
      progress("   teardown of %s failed: %s\n", (*it)->name().c_str(), e.what());
    }
  }
  cs.clear();
  if (res.failed || res.contenders.empty() || res.contenders[0].rounds.empty()) return res;
  for (auto& cr : res.contenders) {
    std::vector<double> v, p50, p99, cpu, csw;
    for (auto& r : cr.rounds) {
      v.push_back(r.value);
      p50.push_back(r.p50_us);
      p99.push_back(r.p99_us);
      cpu.push_back(r.cpu_us_per_op);
      csw.push_back(r.ctxsw_per_op);
      cr.errors += r.errors;
    }
    cr.value = median(v);
    cr.p50_us = median(p50);
    cr.p99_us = median(p99);
    cr.cpu_us_per_op = median(cpu);
    cr.ctxsw_per_op = median(csw);
  }
  if (o.side != "both") return res; // one side only (for profiling): no ratios, no targets
  auto& pg = res.contenders[0];
  // ratio_vs[i]: contender i / the reference (contender 1), median over rounds.
  res.ratio_vs.assign(res.contenders.size(), 1.0);
  for (std::size_t i = 0; i < res.contenders.size(); ++i) {
    if (i == 1) continue;
    std::vector<double> ratios;
    auto& me = res.contenders[i];
    auto& ref = res.contenders[1];
    for (std::size_t r = 0; r < me.rounds.size() && r < ref.rounds.size(); ++r)
      if (ref.rounds[r].value > 0) ratios.push_back(me.rounds[r].value / ref.rounds[r].value);
    res.ratio_vs[i] = median(ratios);
  }
  {
    std::vector<double> diffs;
    auto& ref = res.contenders[1];
    for (std::size_t r = 0; r < pg.rounds.size() && r < ref.rounds.size(); ++r)
      diffs.push_back(pg.rounds[r].p50_us - ref.rounds[r].p50_us);
    res.p50_diff_us = median(diffs);
  }
  const double ratio = res.ratio_vs[0];
  const bool clean = pg.errors == 0;
  std::vector<std::string> parts;
  bool met = true;
  if (w.min_ratio > 0) {
    res.has_target = true;
    double r = w.ratio_ref < res.ratio_vs.size() && w.ratio_ref != 1
                   ? ratio / res.ratio_vs[w.ratio_ref] // pgcm / that contender
                   : ratio;
    parts.push_back("ratio " + fmt(r, 2) + " >= " + fmt(w.min_ratio, 2) +
                    (w.ratio_ref != 1 && w.ratio_ref < res.contenders.size()
                         ? " of " + res.contenders[w.ratio_ref].name
                         : std::string{}));
    met = met && r >= w.min_ratio;
  }
  if (w.max_cpu_ratio > 0) {
    res.has_target = true;
    std::vector<double> ratios;
    auto& ref = res.contenders[1];
    for (std::size_t r = 0; r < pg.rounds.size() && r < ref.rounds.size(); ++r)
      if (ref.rounds[r].cpu_us_per_op > 0)
        ratios.push_back(pg.rounds[r].cpu_us_per_op / ref.rounds[r].cpu_us_per_op);
    auto cr = median(ratios);
    parts.push_back("cpu/op " + fmt(cr, 2) + "x <= " + fmt(w.max_cpu_ratio, 1) + "x");
    met = met && cr <= w.max_cpu_ratio;
  }
  if (w.max_p50_diff_us > 0) {
    res.has_target = true;
    parts.push_back("p50 " + std::string{res.p50_diff_us >= 0 ? "+" : ""} +
                    fmt(res.p50_diff_us, 1) + " us <= +" + fmt(w.max_p50_diff_us, 0) + " us");
    met = met && res.p50_diff_us <= w.max_p50_diff_us;
  }
  if (w.max_time_ratio > 0) {
    res.has_target = true;
    parts.push_back("time ratio " + fmt(ratio, 2) + " <= " + fmt(w.max_time_ratio, 1));
    met = met && ratio <= w.max_time_ratio;
  }
  for (auto& [ref_name, min] : w.min_ratio_vs) {
    res.has_target = true;
    auto it = std::find_if(res.contenders.begin(), res.contenders.end(),
                           [&](auto& x) { return x.name == ref_name; });
    double r = std::nan("");
    if (it != res.contenders.end()) {
      std::vector<double> ratios;
      for (std::size_t k = 0; k < pg.rounds.size() && k < it->rounds.size(); ++k)
        if (it->rounds[k].value > 0) ratios.push_back(pg.rounds[k].value / it->rounds[k].value);
      if (!ratios.empty()) r = median(ratios);
    }
    res.pgcm_ratio_vs.emplace_back(ref_name, r);
    if (std::isnan(r)) {
      parts.push_back("pgcm/" + ref_name + " not measured (" + ref_name + " did not run)");
      met = false;
    } else {
      parts.push_back("pgcm/" + ref_name + " " + fmt(r, 2) + " >= " + fmt(min, 1));
      met = met && r >= min;
    }
  }
  if (!clean) parts.push_back("pgcm had errors");
  for (auto& p : parts)
    res.target_text += (res.target_text.empty() ? "" : ", ") + p;
  res.met = met && clean;
  return res;
}

// -- scale (child processes) ---------------------------------------------------------

double json_num(const std::string& j, const std::string& key, double dflt = -1) {
  auto p = j.find("\"" + key + "\":");
  if (p == std::string::npos) return dflt;
  p += key.size() + 3;
  if (j.compare(p, 4, "true") == 0) return 1;
  if (j.compare(p, 5, "false") == 0) return 0;
  return std::strtod(j.c_str() + p, nullptr);
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char ch : s) {
    if (ch == '\'')
      out += "'\\''";
    else
      out += ch;
  }
  return out + "'";
}

scale_side run_scale_child(const options& o, const std::string& which) {
  char self[4096];
  auto len = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (len <= 0) throw std::runtime_error("cannot find /proc/self/exe");
  self[len] = 0;
  std::string cmd = shell_quote(self) + " --child " + which + " --env " + shell_quote(o.env_file) +
                    " --policy " + o.policy + " --caf-threads " + std::to_string(o.caf_threads) +
                    " --scale-seconds " + fmt(o.scale_seconds, 3) + " --scale-probe " +
                    fmt(o.scale_probe, 3) + " --scale-nodes " + std::to_string(o.scale_nodes) +
                    " --log-level " + shell_quote(o.log_level);
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run " + cmd);
  std::string out;
  char buf[4096];
  while (auto n = std::fread(buf, 1, sizeof(buf), p))
    out.append(buf, n);
  int rc = ::pclose(p);
  auto nl = out.find_last_of('{');
  if (nl == std::string::npos)
    throw std::runtime_error("scale child " + which + " printed no result (exit " +
                             std::to_string(rc) + ")");
  std::string j = out.substr(nl);
  while (!j.empty() && (j.back() == '\n' || j.back() == ' '))
    j.pop_back();
  scale_side s;
  s.raw_json = j;
  s.ok = json_num(j, "ok") == 1 && rc == 0;
  s.sockets = json_num(j, "sockets");
  s.rss_base = json_num(j, "rss_base_kib");
  s.rss_system = json_num(j, "rss_system_kib");
  s.rss_nodes = json_num(j, "rss_nodes_kib");
  s.threads_base = json_num(j, "threads_base");
  s.threads_system = json_num(j, "threads_system");
  s.threads_nodes = json_num(j, "threads_nodes");
  s.cpu_pct = json_num(j, "cpu_pct");
  s.cpu_max = json_num(j, "cpu_pct_max_probe");
  s.startup_ms = json_num(j, "startup_ms");
  s.healthy = json_num(j, "healthy");
  return s;
}

workload_result run_scale(const workload& w, const options& o) {
  workload_result res;
  res.name = w.name;
  res.title = w.title;
  res.k = kind::scale;
  progress("== %s: %s\n", w.name.c_str(), w.title.c_str());
  try {
    progress("   pgcm (child process, policy %s):\n", o.policy.c_str());
    res.scale_pgcm = run_scale_child(o, "scale-pgcm");
    progress("   raw libpq (child process, %d plain connections):\n", o.scale_nodes);
    res.scale_raw = run_scale_child(o, "scale-raw");
  } catch (const std::exception& e) {
    res.failed = true;
    res.failure = e.what();
    progress("   FAILED: %s\n", e.what());
    return res;
  }
  res.has_target = true;
  res.met = res.scale_pgcm.ok && res.scale_pgcm.cpu_pct < 1.0;
  res.target_text = "idle CPU " + fmt(res.scale_pgcm.cpu_pct, 3) + "% < 1% of a core";
  if (!res.scale_pgcm.ok) res.target_text += ", pgcm side failed";
  return res;
}

// -- output ----------------------------------------------------------------------

std::string json_str(const std::string& s) {
  std::string out = "\"";
  for (unsigned char ch : s) {
    switch (ch) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (ch < 0x20) {
        char b[8];
        std::snprintf(b, sizeof(b), "\\u%04x", ch);
        out += b;
      } else {
        out += static_cast<char>(ch);
      }
    }
  }
  return out + "\"";
}

std::string jnum(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

std::string now_text() {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S%z", std::localtime(&t));
  return buf;
}

std::string to_json(const options& o, const cluster_info& c, const std::vector<workload_result>& rs,
                    const std::string& started) {
  std::ostringstream j;
  j << "{\"started\":" << json_str(started) << ",\"cores\":" << std::thread::hardware_concurrency()
    << ",\"policy\":" << json_str(o.policy) << ",\"caf_threads\":" << o.caf_threads
    << ",\"duration_s\":" << jnum(o.duration) << ",\"rounds\":" << o.rounds
    << ",\"warmup_s\":" << jnum(o.warmup) << ",\"servers\":" << c.servers.size()
    << ",\"raw_prepared\":" << (o.raw_simple ? "false" : "true") << ",\"workloads\":[";
  bool first = true;
  for (auto& r : rs) {
    j << (first ? "" : ",") << "{\"name\":" << json_str(r.name)
      << ",\"title\":" << json_str(r.title) << ",\"kind\":"
      << json_str(r.k == kind::throughput ? "throughput"
                  : r.k == kind::duration ? "duration"
                                          : "scale")
      << ",\"unit\":" << json_str(r.unit) << ",\"failed\":" << (r.failed ? "true" : "false");
    first = false;
    if (r.failed) j << ",\"failure\":" << json_str(r.failure);
    if (r.k == kind::scale && !r.failed) {
      j << ",\"pgcm\":" << r.scale_pgcm.raw_json << ",\"raw\":" << r.scale_raw.raw_json;
    } else if (!r.failed) {
      j << ",\"contenders\":[";
      for (std::size_t i = 0; i < r.contenders.size(); ++i) {
        auto& cr = r.contenders[i];
        j << (i ? "," : "") << "{\"name\":" << json_str(cr.name)
          << ",\"describe\":" << json_str(cr.describe) << ",\"role\":"
          << json_str(cr.name.rfind("pgcm", 0) == 0 ? "pgcm"
                      : i <= 1                      ? "reference"
                                                    : "extra reference")
          << ",\"value\":" << jnum(cr.value) << ",\"p50_us\":" << jnum(cr.p50_us)
          << ",\"p99_us\":" << jnum(cr.p99_us) << ",\"cpu_us_per_op\":" << jnum(cr.cpu_us_per_op)
          << ",\"ctxsw_per_op\":" << jnum(cr.ctxsw_per_op) << ",\"errors\":" << cr.errors;
        if (!cr.first_error.empty()) j << ",\"first_error\":" << json_str(cr.first_error);
        if (!cr.groups.empty() && cr.group_ops > 0) {
          j << ",\"per_op_by_thread_group\":{";
          bool f1 = true;
          for (auto& [gname, u] : cr.groups) {
            auto ops = static_cast<double>(cr.group_ops);
            j << (f1 ? "" : ",") << json_str(gname)
              << ":{\"cpu_us\":" << jnum(static_cast<double>(u.cpu_ns) / 1e3 / ops)
              << ",\"csw\":" << jnum(static_cast<double>(u.ctxsw) / ops) << "}";
            f1 = false;
          }
          j << "}";
        }
        if (i < r.ratio_vs.size()) j << ",\"ratio_to_reference\":" << jnum(r.ratio_vs[i]);
        j << ",\"rounds\":[";
        for (std::size_t k = 0; k < cr.rounds.size(); ++k) {
          auto& s = cr.rounds[k];
          j << (k ? "," : "") << "{\"value\":" << jnum(s.value) << ",\"ops\":" << s.ops
            << ",\"errors\":" << s.errors << ",\"seconds\":" << jnum(s.seconds)
            << ",\"p50_us\":" << jnum(s.p50_us) << ",\"p99_us\":" << jnum(s.p99_us)
            << ",\"cpu_us_per_op\":" << jnum(s.cpu_us_per_op)
            << ",\"ctxsw_per_op\":" << jnum(s.ctxsw_per_op);
          for (auto& [key, v] : s.extra)
            j << "," << json_str(key) << ":" << jnum(v);
          j << "}";
        }
        j << "]}";
      }
      j << "]";
      if (r.ratio_vs.size() > 1)
        j << ",\"ratio\":" << jnum(r.ratio_vs[0]) << ",\"p50_diff_us\":" << jnum(r.p50_diff_us);
      if (!r.pgcm_ratio_vs.empty()) {
        j << ",\"pgcm_ratio_to\":{";
        for (std::size_t k = 0; k < r.pgcm_ratio_vs.size(); ++k)
          j << (k ? "," : "") << json_str(r.pgcm_ratio_vs[k].first) << ":"
            << jnum(r.pgcm_ratio_vs[k].second);
        j << "}";
      }
    }
    if (!r.notes.empty()) {
      j << ",\"notes\":[";
      for (std::size_t k = 0; k < r.notes.size(); ++k)
        j << (k ? "," : "") << json_str(r.notes[k]);
      j << "]";
    }
    if (r.has_target)
      j << ",\"target\":{\"text\":" << json_str(r.target_text)
        << ",\"met\":" << (r.met ? "true" : "false") << "}";
    j << "}";
  }
  j << "]}\n";
  return j.str();
}

void print_table(FILE* f, const options& o, const std::vector<workload_result>& rs,
                 const std::string& started) {
  std::fprintf(
      f,
      "\npgcm_bench summary (%s, %u cores, policy %s, %d x %.2f s rounds, medians over rounds)\n",
      started.c_str(), std::thread::hardware_concurrency(), o.policy.c_str(), o.rounds, o.duration);
  std::fprintf(f, "%-20s %-24s %12s %9s %9s %7s %8s %7s  %s\n", "workload", "contender", "value",
               "p50 us", "p99 us", "ratio", "cpu/op", "csw/op", "");
  for (auto& r : rs) {
    if (r.failed) {
      std::fprintf(f, "%-20s FAILED: %s\n", r.name.c_str(), r.failure.c_str());
      continue;
    }
    if (r.k == kind::scale) {
      auto line = [&](const char* who, const scale_side& s) {
        double delta = s.rss_nodes - s.rss_system;
        std::fprintf(f,
                     "%-20s %-24s RSS +%.0f KiB (%.1f KiB/conn over %.0f conns, %.1f KiB/node), "
                     "%.0f threads (+%.0f), idle CPU %.3f%% of a core (max probe %.3f%%)\n",
                     who[0] == 'p' ? r.name.c_str() : "", who, delta,
                     s.sockets > 0 ? delta / s.sockets : 0, s.sockets, delta / o.scale_nodes,
                     s.threads_nodes, s.threads_nodes - s.threads_base, s.cpu_pct, s.cpu_max);
      };
      line("pgcm", r.scale_pgcm);
      line("raw-idle-connections", r.scale_raw);
      std::fprintf(f, "%-20s %-24s pgcm actor system alone: RSS +%.0f KiB, +%.0f threads\n", "", "",
                   r.scale_pgcm.rss_system - r.scale_pgcm.rss_base,
                   r.scale_pgcm.threads_system - r.scale_pgcm.threads_base);
      continue;
    }
    for (std::size_t i = 0; i < r.contenders.size(); ++i) {
      auto& c = r.contenders[i];
      std::string ratio;
      if (r.ratio_vs.size() == r.contenders.size() && r.ratio_vs.size() > 1)
        ratio = i == 1 ? "ref" : fmt(r.ratio_vs[i], 2);
      std::string val = fmt_value(c.value, r.k) + " " +
                        (r.k == kind::duration ? "ms"
                         : r.unit == "q/s"     ? "q/s"
                                               : "r/s");
      std::string note = c.errors ? "errors: " + std::to_string(c.errors) : "";
      if (i == 0)
        for (auto& [ref_name, rv] : r.pgcm_ratio_vs)
          if (!std::isnan(rv))
            note += (note.empty() ? "" : "; ") + ("pgcm/" + ref_name + " ") + fmt(rv, 2);
      if (!c.rounds.empty())
        for (std::size_t e = 0; e < c.rounds[0].extra.size(); ++e) {
          std::vector<double> xs;
          for (auto& rr : c.rounds)
            if (e < rr.extra.size()) xs.push_back(rr.extra[e].second);
          note +=
              (note.empty() ? "" : "; ") + c.rounds[0].extra[e].first + " " + fmt(median(xs), 1);
        }
      bool dur = r.k == kind::duration;
      if (!c.groups.empty() && c.group_ops > 0) {
        std::string g;
        for (auto& [gname, u] : c.groups) {
          if (u.cpu_ns <= 0 && u.ctxsw <= 0) continue;
          auto ops = static_cast<double>(c.group_ops);
          g += (g.empty() ? "" : ", ") + gname + " " +
               fmt(static_cast<double>(u.cpu_ns) / 1e3 / ops, 1) + " us " +
               fmt(static_cast<double>(u.ctxsw) / ops, 1) + " csw";
        }
        note += (note.empty() ? "" : "; ") + std::string{"per op: "} + g;
      }
      std::fprintf(f, "%-20s %-24s %12s %9s %9s %7s %8s %7s  %s\n", i == 0 ? r.name.c_str() : "",
                   c.name.c_str(), val.c_str(), dur ? "" : fmt(c.p50_us, 1).c_str(),
                   dur ? "" : fmt(c.p99_us, 1).c_str(), ratio.c_str(),
                   dur ? (fmt(c.cpu_us_per_op / 1e3, 1) + "ms").c_str()
                       : fmt(c.cpu_us_per_op, 1).c_str(),
                   fmt(c.ctxsw_per_op, dur ? 0 : 1).c_str(), note.c_str());
    }
    for (auto& n : r.notes)
      std::fprintf(f, "%-20s %s\n", "", n.c_str());
  }
  std::fprintf(f, "\nratio = median over rounds of pgcm/reference (throughput: higher is better; "
                  "startup time: lower is better); other rows show that contender/reference.\n"
                  "cpu/op = CPU time of the whole bench process per op in us (client side only; "
                  "the servers' CPU is not counted; node-pg rows add its Node.js process); "
                  "csw/op = its context switches per op.\n");
  std::fprintf(f, "\ntargets:\n");
  for (auto& r : rs)
    if (r.has_target)
      std::fprintf(f, "  %-20s %-6s %s\n", r.name.c_str(), r.met ? "MET" : "MISSED",
                   r.target_text.c_str());
}

int run(int argc, char** argv) {
  auto o = parse(argc, argv);
  set_pgcm_log_level(o.log_level);
  if (o.env_file.empty() && !o.list)
    throw std::runtime_error(
        "no cluster: give --env FILE (or run scripts/bench, which starts one)");
  cluster_info c;
  if (!o.env_file.empty())
    c = read_env_file(o.env_file);
  else
    c.servers = {{"node0", 0}, {"node1", 0}, {"node2", 0}};
  if (o.child == "scale-pgcm")
    return scale_child_pgcm(c, o.policy, o.caf_threads, o.scale_nodes, o.scale_seconds,
                            o.scale_probe);
  if (o.child == "scale-raw")
    return scale_child_raw(c, o.scale_nodes, o.scale_seconds, o.scale_probe);
  if (!o.child.empty()) throw std::runtime_error("unknown --child " + o.child);
  if (c.servers.size() < 3)
    progress("warning: the cluster has %zu servers; query_all workloads use all of them\n",
             c.servers.size());

  pgcm_runtime rt{o.policy, o.caf_threads};
  auto ws = make_workloads(c, rt, o);
  if (o.list) {
    for (auto& w : ws)
      std::printf("%-20s %s\n", w.name.c_str(), w.title.c_str());
    return 0;
  }
  auto started = now_text();
  progress("pgcm_bench: %s, %u cores, policy %s, servers", started.c_str(),
           std::thread::hardware_concurrency(), o.policy.c_str());
  for (auto& s : c.servers)
    progress(" %s:%u", s.name.c_str(), s.port);
  progress(", %d rounds x %.2f s (warm-up %.2f s)\n", o.rounds, o.duration, o.warmup);
  std::vector<workload_result> results;
  bool any = false;
  for (auto& w : ws) {
    if (!selected(o, w.name)) continue;
    any = true;
    results.push_back(w.k == kind::scale ? run_scale(w, o) : run_measured(w, o));
  }
  if (!any) throw std::runtime_error("--only matched no workload (see --list)");
  auto json = to_json(o, c, results, started);
  if (!o.json_file.empty()) {
    std::ofstream out{o.json_file};
    out << json;
    if (!out) throw std::runtime_error("cannot write " + o.json_file);
  }
  if (o.json) {
    print_table(stderr, o, results, started);
    std::fputs(json.c_str(), stdout);
  } else {
    print_table(stdout, o, results, started);
  }
  bool failed = std::any_of(results.begin(), results.end(), [](auto& r) { return r.failed; });
  return failed ? 1 : 0;
}

} // namespace
} // namespace bench

int main(int argc, char** argv) {
  try {
    return bench::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pgcm_bench: %s\n", e.what());
    return 2;
  }
}
