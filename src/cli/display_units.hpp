#pragma once

// How the pgcm command writes durations and times.

#include <chrono>
#include <string>

#include "pgcm/types.hpp"

namespace pgcm::cli {

/// "0.42 ms", "12.3 ms", "1.20 s"; "-" for zero.
std::string format_latency(std::chrono::microseconds d);

/// A standby's lag as "0 B", "12 MB / 2.1 s"; "-" when unknown (primary or not probed).
std::string format_lag(const health_status& h);

/// "now", "3s ago", "2m ago", "1h ago", "-" for the epoch.
std::string format_age(std::chrono::system_clock::time_point t,
                       std::chrono::system_clock::time_point now);

/// UTC, ISO 8601 with milliseconds: "2024-05-01T12:00:00.123Z".
std::string format_utc(std::chrono::system_clock::time_point t);

/// Local wall clock: "14:03:22".
std::string format_clock(std::chrono::system_clock::time_point t);

} // namespace pgcm::cli
