#include "terminal_screen.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "shutdown_signals.hpp"

namespace pgcm::cli {

namespace {

// Enter: alternate screen, hide cursor. Leave: show cursor, main screen.
constexpr const char* enter_sequence = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J";
constexpr const char* leave_sequence = "\x1b[0m\x1b[?25h\x1b[?1049l";

void write_all(const std::string& s) {
  std::size_t done = 0;
  while (done < s.size()) {
    auto n = ::write(STDOUT_FILENO, s.data() + done, s.size() - done);
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

int env_int(const char* name, int fallback) {
  if (const char* v = std::getenv(name)) {
    int n = std::atoi(v);
    if (n > 0) return n;
  }
  return fallback;
}

} // namespace

struct terminal_screen::saved_state {
  termios tio;
};

bool stdout_is_terminal() {
  return ::isatty(STDOUT_FILENO) == 1;
}

bool locale_is_utf8() {
  for (auto* name : {"LC_ALL", "LC_CTYPE", "LANG"}) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') continue;
    std::string s{v};
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s.find("utf-8") != std::string::npos || s.find("utf8") != std::string::npos;
  }
  return false;
}

terminal_screen::terminal_screen() {
  full_screen_ = stdout_is_terminal();
  if (::isatty(STDIN_FILENO) == 1) {
    auto* st = new saved_state{};
    if (::tcgetattr(STDIN_FILENO, &st->tio) == 0) {
      termios raw = st->tio;
      raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
      raw.c_cc[VMIN] = 0;
      raw.c_cc[VTIME] = 0;
      if (::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0) {
        saved_ = st;
        keys_ = true;
      }
    }
    if (saved_ == nullptr) delete st;
  }
  if (full_screen_) {
    write_all(enter_sequence);
  }
  set_emergency_terminal(saved_ != nullptr ? &saved_->tio : nullptr,
                         full_screen_ ? leave_sequence : "");
}

terminal_screen::~terminal_screen() {
  set_emergency_terminal(nullptr, nullptr);
  if (full_screen_) write_all(leave_sequence);
  if (saved_ != nullptr) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_->tio);
    delete saved_;
  }
}

int terminal_columns() {
  winsize ws{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return env_int("COLUMNS", 100);
}

int terminal_lines() {
  winsize ws{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0) return ws.ws_row;
  return env_int("LINES", 24);
}

int terminal_screen::width() const {
  return terminal_columns();
}

int terminal_screen::height() const {
  return terminal_lines();
}

std::string terminal_screen::read_keys() {
  std::string keys;
  if (!keys_) return keys;
  char buf[64];
  for (;;) {
    auto n = ::read(STDIN_FILENO, buf, sizeof(buf));
    if (n <= 0) break;
    keys.append(buf, static_cast<std::size_t>(n));
  }
  return keys;
}

void terminal_screen::draw(const std::vector<std::string>& lines) {
  std::string frame;
  if (full_screen_) {
    frame = "\x1b[H";
    for (std::size_t i = 0; i < lines.size(); ++i) {
      frame += lines[i];
      frame += "\x1b[K";
      if (i + 1 < lines.size()) frame += "\r\n";
    }
    frame += "\x1b[J";
  } else {
    for (auto& l : lines)
      frame += l + "\n";
    frame += "\n";
  }
  write_all(frame);
}

} // namespace pgcm::cli
