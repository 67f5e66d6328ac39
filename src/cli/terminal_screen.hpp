#pragma once

// The terminal while the watch view runs: alternate screen, hidden cursor,
// keys read one at a time without echo (Ctrl-C still raises SIGINT). Plain
// ANSI escape sequences; everything is restored on destruction, and by the
// second-signal exit path (shutdown_signals).

#include <string>
#include <vector>

namespace pgcm::cli {

class terminal_screen {
public:
  /// Takes over the terminal when stdout is one; otherwise draws nothing
  /// special (frames are written one after another).
  terminal_screen();
  ~terminal_screen();
  terminal_screen(const terminal_screen&) = delete;
  terminal_screen& operator=(const terminal_screen&) = delete;

  /// True when stdin delivers keys (a terminal in non-canonical mode).
  bool reads_keys() const { return keys_; }

  /// Columns and lines (80x24 when unknown).
  int width() const;
  int height() const;

  /// Keys typed since the last call (non-blocking).
  std::string read_keys();

  /// Replaces the screen with `lines` in one write.
  void draw(const std::vector<std::string>& lines);

private:
  bool full_screen_ = false;
  bool keys_ = false;
  struct saved_state;
  saved_state* saved_ = nullptr;
};

/// Whether stdout is a terminal.
bool stdout_is_terminal();

/// The terminal's columns and lines ($COLUMNS / $LINES, else 100x24, when
/// stdout is no terminal).
int terminal_columns();
int terminal_lines();

/// Whether the locale's character set is UTF-8 (from LC_ALL, LC_CTYPE, LANG).
bool locale_is_utf8();

} // namespace pgcm::cli
