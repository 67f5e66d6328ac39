#include "log.hpp"

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include <caf/logger.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>

#include "pgcm/error.hpp"
#include "pgcm/logging.hpp"

namespace pgcm {

namespace {

constexpr const char* valid_levels = "trace, debug, info, warn, error, critical, off";

/// spdlog's from_str answers `off` for any text it does not know: never let
/// a typo silence logging.
std::optional<spdlog::level::level_enum> parse_level(const std::string& text) {
  auto level = spdlog::level::from_str(text);
  if (level == spdlog::level::off && text != "off") return std::nullopt;
  return level;
}

std::string env_level_problem(const char* env) {
  return std::string{"PGCM_LOG_LEVEL=\""} + env + "\" is not a log level (valid: " + valid_levels +
         ")";
}

std::shared_ptr<spdlog::logger> make_default() {
  auto existing = spdlog::get("pgcm");
  if (existing) return existing;
  auto lg = spdlog::stderr_color_mt("pgcm");
  lg->set_pattern("%Y-%m-%dT%H:%M:%S.%e [pgcm] %^%l%$ %v");
  auto level = spdlog::level::warn;
  if (const char* env = std::getenv("PGCM_LOG_LEVEL"); env != nullptr && *env != '\0') {
    if (auto parsed = parse_level(env))
      level = *parsed;
    else // the facade refuses to start with it (check_environment); say why here too
      std::fprintf(stderr, "pgcm: %s; logging at warn\n", env_level_problem(env).c_str());
  }
  lg->set_level(level);
  return lg;
}

std::mutex mtx;
std::shared_ptr<spdlog::logger> current;

} // namespace

void set_log_level(const std::string& level) {
  auto parsed = parse_level(level);
  if (!parsed)
    throw error{errc::invalid_argument,
                "log level \"" + level + "\" is not one of " + valid_levels};
  log::logger()->set_level(*parsed);
}

void set_logger(std::shared_ptr<spdlog::logger> lg) {
  std::shared_ptr<spdlog::logger> old; // destroyed outside the lock
  std::lock_guard<std::mutex> guard{mtx};
  old = std::move(current);
  current = std::move(lg);
}

namespace log {

void release_caf_thread_logger() {
  caf::logger::set_current_actor_system(nullptr);
}

std::shared_ptr<spdlog::logger> logger() {
  std::lock_guard<std::mutex> guard{mtx};
  if (!current) current = make_default();
  return current;
}

std::optional<std::string> environment_problem() {
  const char* env = std::getenv("PGCM_LOG_LEVEL");
  if (env == nullptr || *env == '\0' || parse_level(env)) return std::nullopt;
  return env_level_problem(env);
}

} // namespace log

} // namespace pgcm
