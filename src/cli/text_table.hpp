#pragma once

// Aligned text tables as psql prints them:
//
//    id | name
//   ----+-------
//     1 | alice
//   (1 row)
//
// Headers centered, numbers right-aligned, NULL empty, multi-line cells
// continued with '+', control characters shown escaped. Widths count UTF-8
// code points.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgcm::cli {

struct text_table {
  std::vector<std::string> headers;
  /// Per column; missing entries are left-aligned.
  std::vector<bool> right_align;
  /// nullopt: NULL (shown empty).
  std::vector<std::vector<std::optional<std::string>>> rows;
  /// Print the "(N rows)" footer.
  bool footer = true;
};

std::string render(const text_table& t);

/// Display width of `s`: UTF-8 code points (continuation bytes do not count).
std::size_t display_width(std::string_view s);

/// `s` with control characters (other than newline) and invalid UTF-8
/// bytes replaced by visible escapes (\t, \x1b, \xff), so output cannot
/// drive the terminal.
std::string sanitize(std::string_view s);

} // namespace pgcm::cli
