#pragma once

// pgcm's logging: one spdlog logger named "pgcm" (stderr by default).
// Never pass a password or a conninfo string to it: use describe(node_config).

#include <spdlog/spdlog.h>

namespace pgcm::log {

/// The "pgcm" logger; created on first use, level from PGCM_LOG_LEVEL
/// (trace, debug, info, warn, error, critical, off; default warn).
spdlog::logger& logger();

template <class... Ts>
void debug(spdlog::format_string_t<Ts...> fmt, Ts&&... xs) {
  logger().debug(fmt, std::forward<Ts>(xs)...);
}

template <class... Ts>
void info(spdlog::format_string_t<Ts...> fmt, Ts&&... xs) {
  logger().info(fmt, std::forward<Ts>(xs)...);
}

template <class... Ts>
void warn(spdlog::format_string_t<Ts...> fmt, Ts&&... xs) {
  logger().warn(fmt, std::forward<Ts>(xs)...);
}

template <class... Ts>
void error(spdlog::format_string_t<Ts...> fmt, Ts&&... xs) {
  logger().error(fmt, std::forward<Ts>(xs)...);
}

} // namespace pgcm::log
