#pragma once

// The subcommands of `pgcm`. Each returns the exit code (0 ok, 1 a query or
// node failed) and throws usage_error / config_error (exit 2) or
// pgcm::error (exit 1, or 2 for a configuration the manager refused).

#include "cli_options.hpp"

namespace pgcm::cli {

int run_health(const cli_options& opts);
int run_query(const cli_options& opts);
int run_watch(const cli_options& opts);
int run_demo(const cli_options& opts);
int run_serve(const cli_options& opts);

} // namespace pgcm::cli
