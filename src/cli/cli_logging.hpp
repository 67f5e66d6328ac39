#pragma once

// Where the pgcm command sends pgcm's log: stderr (default), --log-file, or,
// while the full-screen view runs, a small in-memory ring shown at the
// bottom of the view (stderr would scribble over it).

#include <functional>
#include <string>
#include <vector>

#include "cli_options.hpp"

namespace pgcm::cli {

/// The last captured log lines, oldest first.
using log_tail = std::function<std::vector<std::string>()>;

/// Applies --log-level and --log-file. With `capture` and no --log-file the
/// log goes to a ring of the last lines instead of stderr, readable through
/// the returned function (empty otherwise). Throws usage_error when the log
/// file cannot be opened.
log_tail setup_logging(const cli_options& opts, bool capture);

/// After the full-screen view: the log goes to stderr again (unless --log-file).
void end_log_capture(const cli_options& opts);

} // namespace pgcm::cli
