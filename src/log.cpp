#include "log.hpp"

#include <cstdlib>
#include <mutex>

#include <caf/logger.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>

#include "pgcm/logging.hpp"

namespace pgcm {

namespace {

std::shared_ptr<spdlog::logger> make_default() {
  auto existing = spdlog::get("pgcm");
  if (existing) return existing;
  auto lg = spdlog::stderr_color_mt("pgcm");
  lg->set_pattern("%Y-%m-%dT%H:%M:%S.%e [pgcm] %^%l%$ %v");
  auto level = spdlog::level::warn;
  if (const char* env = std::getenv("PGCM_LOG_LEVEL")) level = spdlog::level::from_str(env);
  lg->set_level(level);
  return lg;
}

std::mutex mtx;
std::shared_ptr<spdlog::logger> current;

} // namespace

void set_log_level(const std::string& level) {
  log::logger().set_level(spdlog::level::from_str(level));
}

void set_logger(std::shared_ptr<spdlog::logger> lg) {
  std::lock_guard<std::mutex> guard{mtx};
  current = std::move(lg);
}

namespace log {

void release_caf_thread_logger() {
  caf::logger::set_current_actor_system(nullptr);
}

spdlog::logger& logger() {
  std::lock_guard<std::mutex> guard{mtx};
  if (!current) current = make_default();
  return *current;
}

} // namespace log

} // namespace pgcm
