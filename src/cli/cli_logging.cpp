#include "cli_logging.hpp"

#include <cstdlib>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <pgcm/error.hpp>
#include <pgcm/logging.hpp>

namespace pgcm::cli {

namespace {

constexpr std::size_t ring_lines = 50;

std::string level_of(const cli_options& opts) {
  if (!opts.log_level.empty()) return opts.log_level;
  if (const char* env = std::getenv("PGCM_LOG_LEVEL"); env != nullptr && *env != '\0') return env;
  return "warn";
}

/// Sets the level; a bad one from the environment is a usage error that
/// names the variable (--log-level is checked by the option parser).
void apply_level(const cli_options& opts) {
  auto level = level_of(opts);
  try {
    pgcm::set_log_level(level);
  } catch (const pgcm::error&) {
    if (!opts.log_level.empty()) throw;
    throw usage_error{"PGCM_LOG_LEVEL=\"" + level +
                      "\" is not a log level (valid: trace, debug, info, warn, error, critical, "
                      "off)"};
  }
}

} // namespace

log_tail setup_logging(const cli_options& opts, bool capture) {
  log_tail tail;
  if (opts.log_file) {
    std::shared_ptr<spdlog::sinks::basic_file_sink_mt> sink;
    try {
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(*opts.log_file);
    } catch (const spdlog::spdlog_ex& e) {
      throw usage_error{"--log-file " + *opts.log_file + ": " + e.what()};
    }
    auto lg = std::make_shared<spdlog::logger>("pgcm", sink);
    lg->set_pattern("%Y-%m-%dT%H:%M:%S.%e [pgcm] %l %v");
    lg->flush_on(spdlog::level::warn);
    pgcm::set_logger(lg);
  } else if (capture) {
    auto ring = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(ring_lines);
    ring->set_pattern("%H:%M:%S %l %v");
    pgcm::set_logger(std::make_shared<spdlog::logger>("pgcm", ring));
    tail = [ring] {
      auto lines = ring->last_formatted(4);
      for (auto& l : lines)
        while (!l.empty() && (l.back() == '\n' || l.back() == '\r'))
          l.pop_back();
      return lines;
    };
  }
  apply_level(opts);
  return tail;
}

void end_log_capture(const cli_options& opts) {
  if (opts.log_file) return;
  pgcm::set_logger(nullptr); // back to pgcm's default stderr logger
  apply_level(opts);
}

} // namespace pgcm::cli
