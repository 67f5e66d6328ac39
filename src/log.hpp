#pragma once

// pgcm's logging: one spdlog logger named "pgcm" (stderr by default).
// Never pass a password or a conninfo string to it: use describe(node_config).

#include <memory>
#include <optional>
#include <string>

#include <spdlog/spdlog.h>

namespace pgcm::log {

/// The "pgcm" logger; created on first use, level from PGCM_LOG_LEVEL
/// (trace, debug, info, warn, error, critical, off; default warn). Shared:
/// set_logger() may replace it meanwhile, the caller's copy stays valid.
std::shared_ptr<spdlog::logger> logger();

/// Why PGCM_LOG_LEVEL is unusable (it names no level), if it is.
std::optional<std::string> environment_problem();

template <class... Ts> void debug(spdlog::format_string_t<Ts...> fmt, Ts&&... xs) {
  logger()->debug(fmt, std::forward<Ts>(xs)...);
}

template <class... Ts> void info(spdlog::format_string_t<Ts...> fmt, Ts&&... xs) {
  logger()->info(fmt, std::forward<Ts>(xs)...);
}

template <class... Ts> void warn(spdlog::format_string_t<Ts...> fmt, Ts&&... xs) {
  logger()->warn(fmt, std::forward<Ts>(xs)...);
}

template <class... Ts> void error(spdlog::format_string_t<Ts...> fmt, Ts&&... xs) {
  logger()->error(fmt, std::forward<Ts>(xs)...);
}

/// Drops the calling thread's reference to CAF's logger. CAF keeps one in a
/// thread_local on every thread that created an actor system or a
/// scoped_actor, and ~actor_system waits until the logger is gone: a system
/// destroyed on another thread (or while a thread that used it lives on)
/// would otherwise wait forever. Call after every scoped_actor on a thread
/// that pgcm does not own.
void release_caf_thread_logger();

} // namespace pgcm::log
