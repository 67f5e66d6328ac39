// pgcm: the command-line tool. See `pgcm --help` and README.md.

#include <iostream>

#include <pgcm/error.hpp>

#include "cli_options.hpp"
#include "commands.hpp"
#include "config_file.hpp"
#include "shutdown_signals.hpp"

#ifndef PGCM_VERSION
#define PGCM_VERSION "unknown"
#endif

int main(int argc, char** argv) {
  using namespace pgcm::cli;
  install_signal_handlers();
  cli_options opts;
  try {
    opts = parse_command_line(argc, argv);
  } catch (const usage_error& e) {
    std::cerr << "pgcm: " << e.what() << "\n";
    return 2;
  }
  if (opts.version) {
    std::cout << "pgcm " << PGCM_VERSION << "\n";
    return 0;
  }
  if (opts.help) {
    std::cout << help_text(opts.command);
    return 0;
  }
  try {
    if (opts.command == "health") return run_health(opts);
    if (opts.command == "query") return run_query(opts);
    if (opts.command == "watch") return run_watch(opts);
    if (opts.command == "serve") return run_serve(opts);
    return run_demo(opts);
  } catch (const usage_error& e) {
    std::cerr << "pgcm: " << e.what() << "\n";
    return 2;
  } catch (const pgcm::config_error& e) {
    std::cerr << "pgcm: " << e.what() << "\n";
    return 2;
  } catch (const pgcm::error& e) {
    if (stop_requested() && e.code() == pgcm::errc::shutting_down) {
      std::cerr << "pgcm: interrupted\n";
      return 1;
    }
    std::cerr << "pgcm: error: " << e.what() << "\n";
    auto c = e.code();
    return c == pgcm::errc::invalid_config || c == pgcm::errc::duplicate_node ||
                   c == pgcm::errc::invalid_argument
               ? 2
               : 1;
  } catch (const std::exception& e) {
    std::cerr << "pgcm: error: " << e.what() << "\n";
    return 1;
  }
}
