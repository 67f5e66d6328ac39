#pragma once

// The JSON shapes of nodes and events, shared by `pgcm health --json` and the
// HTTP endpoint (/api/health, /api/events) so that both say the same thing.

#include <chrono>
#include <string>
#include <vector>

#include <pgcm/types.hpp>

#include "json_writer.hpp"

namespace pgcm::cli {

/// {"id":..,"host":..,"port":..,"database":..,"user":..,"role":..,"status":..,
///  "latency_us":..,"consecutive_failures":..,"last_error":..,"last_check":..,
///  "pool":{every pool_stats counter, gauge and histogram bucket}}
void write_node(json_writer& j, const node_info& n);

/// The health fields of write_node, without the enclosing object.
void write_health_fields(json_writer& j, const health_status& h);

/// {"total_connections":.., ...}: every pool_stats field but node_id.
void write_pool(json_writer& j, const pool_stats& p);

/// `pgcm health --json`: {"nodes":[write_node...],"healthy":N,"total":N}
std::string health_json(const std::vector<node_info>& nodes);

/// One event: {"time":..,"type":..,"node":.., and "health":{..}, "pool":{..},
/// "error":{"code":..,"message":..,"sqlstate":..} when the event has them}.
std::string event_json(const node_event& ev, std::chrono::system_clock::time_point at);

} // namespace pgcm::cli
