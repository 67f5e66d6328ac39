#include "display_units.hpp"

#include <cstdio>
#include <ctime>

namespace pgcm::cli {

using namespace std::chrono;

std::string format_lag(const health_status& h) {
  if (h.role != node_role::standby || !h.lag_bytes) return "-";
  char buf[64];
  auto b = static_cast<double>(*h.lag_bytes);
  if (*h.lag_bytes < 1024)
    std::snprintf(buf, sizeof(buf), "%lld B", static_cast<long long>(*h.lag_bytes));
  else if (*h.lag_bytes < 1024 * 1024)
    std::snprintf(buf, sizeof(buf), "%.1f kB", b / 1024);
  else
    std::snprintf(buf, sizeof(buf), "%.1f MB", b / (1024 * 1024));
  std::string out = buf;
  if (h.lag && h.lag->count() > 0) {
    std::snprintf(buf, sizeof(buf), " / %.1f s", static_cast<double>(h.lag->count()) / 1000.0);
    out += buf;
  }
  return out;
}

std::string format_latency(microseconds d) {
  char buf[32];
  auto us = d.count();
  if (us <= 0) return "-";
  if (us < 10'000)
    std::snprintf(buf, sizeof(buf), "%.2f ms", static_cast<double>(us) / 1000.0);
  else if (us < 1'000'000)
    std::snprintf(buf, sizeof(buf), "%.1f ms", static_cast<double>(us) / 1000.0);
  else
    std::snprintf(buf, sizeof(buf), "%.2f s", static_cast<double>(us) / 1e6);
  return buf;
}

std::string format_age(system_clock::time_point t, system_clock::time_point now) {
  if (t == system_clock::time_point{}) return "-";
  auto s = duration_cast<seconds>(now - t).count();
  if (s < 1) return "now";
  if (s < 120) return std::to_string(s) + "s ago";
  if (s < 7200) return std::to_string(s / 60) + "m ago";
  return std::to_string(s / 3600) + "h ago";
}

std::string format_utc(system_clock::time_point t) {
  auto secs = system_clock::to_time_t(t);
  auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count() % 1000;
  if (ms < 0) ms += 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

std::string format_clock(system_clock::time_point t) {
  auto secs = system_clock::to_time_t(t);
  std::tm tm{};
  localtime_r(&secs, &tm);
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

} // namespace pgcm::cli
