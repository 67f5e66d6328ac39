#pragma once

// SIGINT / SIGTERM for the pgcm command.
//
// The first signal asks for a graceful stop: stop_requested() turns true,
// wake_fd() becomes readable, and the registered stop hooks run (on a
// thread of their own, e.g. manager.shutdown(), which makes blocked calls
// return). A second signal exits at once with 128 + signal number, after
// restoring the terminal and starting the emergency command (e.g. stopping
// the demo cluster, detached in a session of its own) when one is set.
// SIGWINCH also wakes wake_fd() (the watch view redraws).

#include <functional>
#include <string>
#include <vector>

struct termios;

namespace pgcm::cli {

/// Installs the handlers and starts the hook thread. Call once, early.
void install_signal_handlers();

bool stop_requested();

/// Asks for a stop as the first signal would (e.g. the q key).
void request_stop();

/// Readable after any handled signal (and after request_stop()); poll it,
/// then drain_wake_fd().
int wake_fd();
void drain_wake_fd();

/// True once after each SIGWINCH.
bool take_resize();

/// Runs `hook` on the first stop, on the hook thread (or at once, in the
/// constructor, if the hooks ran already). Removed when the returned guard is destroyed;
/// the hook is not running then.
class stop_hook {
public:
  explicit stop_hook(std::function<void()> hook);
  ~stop_hook();
  stop_hook(const stop_hook&) = delete;
  stop_hook& operator=(const stop_hook&) = delete;

private:
  std::size_t id_;
};

/// What the second signal restores before exiting: the terminal settings of
/// stdin and an escape sequence for stdout (leave the alternate screen,
/// show the cursor). Pass nullptr to clear.
void set_emergency_terminal(const termios* saved, const char* reset_sequence);

/// A command the second signal starts, detached, before exiting (e.g.
/// `pg-cluster stop DIR`). Empty to clear.
void set_emergency_command(const std::vector<std::string>& argv);

} // namespace pgcm::cli
