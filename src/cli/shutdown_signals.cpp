#include "shutdown_signals.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

namespace pgcm::cli {

namespace {

// Everything the handler touches is set up before and only read there.
int wake_pipe[2] = {-1, -1};
int hook_pipe[2] = {-1, -1};
std::atomic<int> stops{0};
std::atomic<bool> resized{false};

// Emergency data: written outside the handler while disarmed, read by the
// handler only while armed (a signal in between skips that step).
struct emergency_terminal {
  termios saved;
  std::string reset;
};
struct emergency_command {
  std::vector<std::string> args;
  std::vector<char*> argv;
};
emergency_terminal terminal_state;
emergency_command command_state;
std::atomic<bool> terminal_armed{false};
std::atomic<bool> command_armed{false};

std::mutex hooks_mtx; // held while hooks run
std::map<std::size_t, std::function<void()>> hooks;
std::size_t next_hook = 0;
bool hooks_ran = false;

void write_byte(int fd) {
  if (fd < 0) return;
  char c = 1;
  auto rc = ::write(fd, &c, 1);
  (void)rc; // a full pipe is already readable
}

void emergency_exit(int sig) {
  if (terminal_armed.load()) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &terminal_state.saved);
    auto rc = ::write(STDOUT_FILENO, terminal_state.reset.data(), terminal_state.reset.size());
    (void)rc;
  }
  if (command_armed.load()) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::setsid(); // out of the terminal's process group: a third Ctrl-C cannot stop it
      ::execv(command_state.argv[0], command_state.argv.data());
      ::_exit(127);
    }
  }
  static const char msg[] = "pgcm: second signal, exiting at once\n";
  auto rc = ::write(STDERR_FILENO, msg, sizeof(msg) - 1);
  (void)rc;
  ::_exit(128 + sig);
}

extern "C" void on_signal(int sig) {
  int saved_errno = errno;
  if (sig == SIGWINCH) {
    resized = true;
    write_byte(wake_pipe[1]);
  } else if (stops.fetch_add(1) == 0) {
    write_byte(wake_pipe[1]);
    write_byte(hook_pipe[1]);
  } else {
    emergency_exit(sig);
  }
  errno = saved_errno;
}

void run_hooks() {
  std::lock_guard<std::mutex> guard{hooks_mtx};
  if (hooks_ran) return;
  hooks_ran = true;
  for (auto& [id, hook] : hooks)
    hook();
}

void hook_thread() {
  char c;
  for (;;) {
    auto n = ::read(hook_pipe[0], &c, 1);
    if (n == 1) break;
    if (n < 0 && errno == EINTR) continue;
    return;
  }
  run_hooks();
}

void make_pipe(int (&p)[2]) {
  if (::pipe(p) != 0) return;
  for (int fd : p)
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  ::fcntl(p[1], F_SETFL, O_NONBLOCK);
}

} // namespace

void install_signal_handlers() {
  make_pipe(wake_pipe);
  ::fcntl(wake_pipe[0], F_SETFL, O_NONBLOCK);
  make_pipe(hook_pipe);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM, SIGWINCH})
    ::sigaction(sig, &sa, nullptr);
  // Writing to a closed pipe (e.g. `pgcm query ... | head`) should not kill us silently.
  ::signal(SIGPIPE, SIG_IGN);
  std::thread{hook_thread}.detach();
}

bool stop_requested() {
  return stops.load() > 0;
}

void request_stop() {
  if (stops.fetch_add(1) == 0) {
    write_byte(wake_pipe[1]);
    write_byte(hook_pipe[1]);
  } else {
    stops.fetch_sub(1); // a second q is not a second signal
  }
}

int wake_fd() {
  return wake_pipe[0];
}

void drain_wake_fd() {
  char buf[64];
  while (::read(wake_pipe[0], buf, sizeof(buf)) > 0) {
  }
}

bool take_resize() {
  return resized.exchange(false);
}

stop_hook::stop_hook(std::function<void()> hook) {
  std::lock_guard<std::mutex> guard{hooks_mtx};
  id_ = next_hook++;
  if (hooks_ran) {
    hook(); // already stopping: run it right away
    return;
  }
  hooks.emplace(id_, std::move(hook));
}

stop_hook::~stop_hook() {
  std::lock_guard<std::mutex> guard{hooks_mtx};
  hooks.erase(id_);
}

void set_emergency_terminal(const termios* saved, const char* reset_sequence) {
  terminal_armed = false;
  if (saved == nullptr) return;
  terminal_state.saved = *saved;
  terminal_state.reset = reset_sequence != nullptr ? reset_sequence : "";
  terminal_armed = true;
}

void set_emergency_command(const std::vector<std::string>& argv) {
  command_armed = false;
  if (argv.empty()) return;
  command_state.args = argv;
  command_state.argv.clear();
  for (auto& a : command_state.args)
    command_state.argv.push_back(a.data());
  command_state.argv.push_back(nullptr);
  command_armed = true;
}

} // namespace pgcm::cli
