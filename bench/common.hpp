#pragma once

// Shared pieces of pgcm_bench: cluster description, measurement windows,
// the contender interface, statistics and /proc probes. CAF-free and
// libpq-free on purpose (raw.cpp and pgcm_side.cpp include those).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bench {

using clock_type = std::chrono::steady_clock;
using std::chrono::nanoseconds;

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<nanoseconds>(clock_type::now().time_since_epoch()).count();
}

/// One PostgreSQL server of the test cluster.
struct server {
  std::string name; // node0, node1, ...
  std::uint16_t port = 0;
};

/// What the cluster env file (scripts/pg-cluster) says.
struct cluster_info {
  std::string host = "127.0.0.1";
  std::string user;
  std::string password;
  std::string database;
  std::vector<server> servers; // servers[0] is the primary
};

/// Reads KEY=VALUE lines; throws std::runtime_error when incomplete.
cluster_info read_env_file(const std::string& path);

/// The libpq keyword/value pairs the raw references use (the same settings
/// pgcm uses that matter for speed: TCP to 127.0.0.1, sslmode=disable).
std::vector<std::pair<std::string, std::string>>
conn_keywords(const cluster_info& c, const server& s, const std::string& app);

/// The replication-slots query of the spec.
inline const std::string slots_sql =
    "SELECT slot_name, active, restart_lsn FROM pg_replication_slots";
inline const std::string select1_sql = "SELECT 1";

/// What one measurement window of one contender produced.
struct window_result {
  std::uint64_t ops = 0;             // completed operations (queries or fan-out rounds)
  std::uint64_t errors = 0;          // failed operations (not counted in ops)
  double seconds = 0;                // length of the window
  std::vector<std::uint32_t> lat_ns; // one per op (saturates at ~4.29 s)
  std::string first_error;
  /// Further named values (e.g. when initialize() returned).
  std::vector<std::pair<std::string, double>> extra;
  /// CPU time and context switches of a helper process that did the work
  /// (the node-postgres reference), added to the bench process's own.
  std::int64_t child_cpu_ns = 0;
  std::int64_t child_ctxsw = 0;
};

inline std::uint32_t clamp_ns(std::int64_t ns) {
  if (ns < 0) return 0;
  if (ns > 0xFFFFFFFFLL) return 0xFFFFFFFFu;
  return static_cast<std::uint32_t>(ns);
}

/// Something measured in windows: pgcm through one API, or a raw reference.
/// setup() opens what it needs (untimed), run() measures one window of about
/// `d`, teardown() closes everything.
class contender {
public:
  virtual ~contender() = default;
  virtual std::string name() const = 0;
  /// One-line description (connections, threads, prepared, pipelined).
  virtual std::string describe() const = 0;
  virtual void setup() {}
  virtual window_result run(nanoseconds d) = 0;
  virtual void teardown() {}
};

using contender_ptr = std::unique_ptr<contender>;

/// Start/stop gate for client threads of one window.
struct window_gate {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::atomic<bool> stop{false};
};

/// Percentile of sorted samples (nearest rank).
inline double percentile(const std::vector<std::uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto idx = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
  return static_cast<double>(sorted[std::min(idx, sorted.size() - 1)]);
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// -- process probes (/proc/self) ----------------------------------------------

/// Resident set size in KiB (VmRSS).
long rss_kib();
/// Number of threads of this process.
int thread_count();
/// CPU time (user + system) of this process in ns.
std::int64_t process_cpu_ns();
/// CPU time and context switches (voluntary + involuntary) of this process.
struct proc_usage {
  std::int64_t cpu_ns = 0;
  std::int64_t ctxsw = 0;
};
proc_usage usage_now();
/// Per-thread-group CPU and context switches of this process between two
/// snapshots (groups: main, caf-workers, caf-clock, caf-detached,
/// pgcm-reactor, exited-threads = client threads of the window, other).
struct thread_sample {
  std::string comm, wchan;
  std::int64_t run_ns = 0, csw = 0;
};
using thread_snapshot = std::vector<std::pair<int, thread_sample>>;
thread_snapshot snapshot_threads();
std::vector<std::pair<std::string, proc_usage>> group_usage(const thread_snapshot& before,
                                                            const thread_snapshot& after,
                                                            proc_usage total_before,
                                                            proc_usage total_after);

/// Open socket descriptors of this process (= database connections here).
int socket_count();

/// CPU use of this (idle) process over `seconds`, sampled every `probe_seconds`.
struct idle_cpu {
  double avg_pct = 0; // percent of one core
  double max_probe_pct = 0;
  std::vector<double> probes;
};
idle_cpu measure_idle(double seconds, double probe_seconds);
/// Prints `"cpu_pct":..,"cpu_pct_max_probe":..,"probes":[..]` on stdout.
void print_idle_json(const idle_cpu& c);

} // namespace bench
