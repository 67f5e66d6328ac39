#pragma once

// Prometheus metrics of a connection_manager, for embedders that serve their
// own /metrics (`pgcm serve --http` serves this text).

#include <string>
#include <vector>

#include "pgcm/types.hpp"

namespace pgcm {

class connection_manager;

/// The content type of prometheus_metrics' text.
inline constexpr const char* prometheus_content_type = "text/plain; version=0.0.4; charset=utf-8";

/// Every node's health, pool and query statistics in the Prometheus text
/// exposition format 0.0.4 (HELP and TYPE per family, a `node` label on every
/// sample, base units: seconds, counters end in `_total`). Families:
/// pgcm_node_healthy, pgcm_node_is_primary, pgcm_node_probe_latency_seconds,
/// pgcm_node_consecutive_failures, pgcm_pool_connections{state},
/// pgcm_pool_waiting_requests, pgcm_queries_total{outcome},
/// pgcm_connections_opened_total, pgcm_connect_failures_total and the
/// histogram pgcm_query_duration_seconds.
/// Asks the manager for its nodes (blocks like get_nodes(); throws what it throws).
std::string prometheus_metrics(const connection_manager& mgr);

/// The same text for nodes already in hand (e.g. a state_store snapshot).
std::string prometheus_metrics(const std::vector<node_info>& nodes);

/// `value` escaped for a label value in the text format: backslash, double
/// quote and newline become \\, \" and \n.
std::string prometheus_escape_label(const std::string& value);

} // namespace pgcm
