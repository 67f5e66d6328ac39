#include "pgcm/metrics.hpp"

#include <optional>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "pgcm/connection_manager.hpp"

namespace pgcm {

namespace {

/// A sample value in the text format: integers as such, others with enough
/// digits to round-trip.
std::string number(double x) {
  char buf[32];
  for (int digits = 15; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  return buf;
}

std::string number(std::int64_t x) {
  return std::to_string(x);
}

std::string seconds_from_us(std::int64_t us) {
  return number(static_cast<double>(us) / 1e6);
}

class family_writer {
public:
  family_writer(std::string& out, const std::vector<node_info>& nodes) : out_(out), nodes_(nodes) {}

  void header(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }

  /// One sample: name{node="id"[,extra]} value
  void sample(const char* name, const node_info& n, const std::string& extra_labels,
              const std::string& value) {
    out_ += name;
    out_ += "{node=\"";
    out_ += prometheus_escape_label(n.id);
    out_ += '"';
    if (!extra_labels.empty()) {
      out_ += ',';
      out_ += extra_labels;
    }
    out_ += "} ";
    out_ += value;
    out_ += '\n';
  }

  /// A family with one sample per node.
  template <class F>
  void per_node(const char* name, const char* type, const char* help, F value_of) {
    header(name, type, help);
    for (auto& n : nodes_)
      sample(name, n, {}, value_of(n));
  }

  /// A family with a sample for each node whose value is known.
  template <class F>
  void per_node_known(const char* name, const char* type, const char* help, F value_of) {
    header(name, type, help);
    for (auto& n : nodes_)
      if (auto v = value_of(n)) sample(name, n, {}, *v);
  }

private:
  std::string& out_;
  const std::vector<node_info>& nodes_;
};

} // namespace

std::string prometheus_escape_label(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
    case '\\':
      out += "\\\\";
      break;
    case '"':
      out += "\\\"";
      break;
    case '\n':
      out += "\\n";
      break;
    default:
      out += c;
    }
  }
  return out;
}

std::string prometheus_metrics(const std::vector<node_info>& nodes) {
  std::string out;
  out.reserve(512 + nodes.size() * 2048);
  family_writer w{out, nodes};
  w.per_node("pgcm_node_healthy", "gauge", "1 if the node's last health probes passed, else 0.",
             [](const node_info& n) {
               return number(std::int64_t{n.health.status == health_state::healthy});
             });
  w.per_node(
      "pgcm_node_is_primary", "gauge",
      "1 if the health probe saw the node as primary (not in recovery), else 0.",
      [](const node_info& n) { return number(std::int64_t{n.health.role == node_role::primary}); });
  w.per_node("pgcm_node_probe_latency_seconds", "gauge",
             "Round trip of the node's last successful health probe.",
             [](const node_info& n) { return seconds_from_us(n.health.latency.count()); });
  w.per_node(
      "pgcm_node_consecutive_failures", "gauge", "Health probes of the node that failed in a row.",
      [](const node_info& n) { return number(std::int64_t{n.health.consecutive_failures}); });
  w.per_node_known("pgcm_node_timeline", "gauge",
                   "Timeline of the node (a primary's current one, a standby's replayed one).",
                   [](const node_info& n) -> std::optional<std::string> {
                     if (n.health.timeline == 0) return std::nullopt;
                     return number(static_cast<std::int64_t>(n.health.timeline));
                   });
  w.per_node_known("pgcm_node_replication_lag_bytes", "gauge",
                   "How far a standby's replay is behind the primary's WAL position.",
                   [](const node_info& n) -> std::optional<std::string> {
                     if (n.health.role != node_role::standby || !n.health.lag_bytes)
                       return std::nullopt;
                     return number(*n.health.lag_bytes);
                   });
  w.per_node_known("pgcm_node_replication_lag_seconds", "gauge",
                   "The same in time: 0 when caught up (README, Routing).",
                   [](const node_info& n) -> std::optional<std::string> {
                     if (n.health.role != node_role::standby || !n.health.lag) return std::nullopt;
                     return seconds_from_us(n.health.lag->count() * 1000);
                   });
  w.per_node(
      "pgcm_node_in_conflict", "gauge",
      "1 if the node is kept out of routing (split brain, another cluster), else 0.",
      [](const node_info& n) { return number(std::int64_t{n.health.conflict.has_value()}); });

  w.header("pgcm_pool_connections", "gauge",
           "Open pool connections of the node: idle (no request in flight) or busy.");
  for (auto& n : nodes) {
    auto idle = n.pool.idle_connections;
    auto busy = std::max<std::int64_t>(0, n.pool.total_connections - idle);
    w.sample("pgcm_pool_connections", n, "state=\"idle\"", number(idle));
    w.sample("pgcm_pool_connections", n, "state=\"busy\"", number(busy));
  }
  w.per_node("pgcm_pool_waiting_requests", "gauge",
             "Requests not yet executing on the node: queued in its pool or pipelined behind "
             "another statement.",
             [](const node_info& n) { return number(n.pool.waiting_requests); });

  w.header("pgcm_queries_total", "counter", "Queries the node's pool answered, by outcome.");
  for (auto& n : nodes) {
    w.sample("pgcm_queries_total", n, "outcome=\"ok\"", number(n.pool.queries_ok));
    w.sample("pgcm_queries_total", n, "outcome=\"failed\"", number(n.pool.queries_failed));
    w.sample("pgcm_queries_total", n, "outcome=\"timed_out\"", number(n.pool.queries_timed_out));
  }
  w.per_node("pgcm_connections_opened_total", "counter",
             "Pool connection attempts to the node that succeeded.",
             [](const node_info& n) { return number(n.pool.connections_opened); });
  w.per_node("pgcm_connect_failures_total", "counter",
             "Pool connection attempts to the node that failed.",
             [](const node_info& n) { return number(n.pool.connect_failures); });

  w.header("pgcm_query_duration_seconds", "histogram",
           "Time from a query call to its answer by a connection of the node's pool.");
  for (auto& n : nodes) {
    auto& p = n.pool;
    // Buckets must never decrease, even if the stats came from a peer that
    // counted differently; +Inf is the count.
    std::int64_t so_far = 0;
#define PGCM_X(name, bound_us)                                                                     \
  so_far = std::max(so_far, p.name);                                                               \
  w.sample("pgcm_query_duration_seconds_bucket", n, "le=\"" + seconds_from_us(bound_us) + "\"",    \
           number(so_far));
    PGCM_QUERY_DURATION_BUCKETS(PGCM_X)
#undef PGCM_X
    w.sample("pgcm_query_duration_seconds_bucket", n, "le=\"+Inf\"",
             number(std::max(so_far, p.query_duration_count)));
    w.sample("pgcm_query_duration_seconds_sum", n, {}, seconds_from_us(p.query_duration_sum_us));
    w.sample("pgcm_query_duration_seconds_count", n, {},
             number(std::max(so_far, p.query_duration_count)));
  }
  return out;
}

std::string prometheus_metrics(const connection_manager& mgr) {
  return prometheus_metrics(mgr.get_nodes());
}

} // namespace pgcm
