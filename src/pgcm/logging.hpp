#pragma once

#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace pgcm {

/// Sets the level of pgcm's logger: trace, debug, info, warn (default), error,
/// critical or off. The environment variable PGCM_LOG_LEVEL sets the initial level.
void set_log_level(const std::string& level);

/// Replaces pgcm's logger (e.g. to capture its lines). pgcm never logs passwords.
void set_logger(std::shared_ptr<spdlog::logger> logger);

} // namespace pgcm
