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

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgcm::cli {

/// One row's cells; nullopt: NULL (shown empty).
using text_row = std::vector<std::optional<std::string>>;

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

/// A table printed piece by piece as its rows arrive (pgcm query streams):
/// the column widths are fixed by the header and the rows given to begin();
/// a later cell that is wider overflows its column.
class table_stream {
public:
  table_stream(std::vector<std::string> headers, std::vector<bool> right_align);
  /// Header, separator and `first`, which decide the widths.
  std::string begin(const std::vector<text_row>& first);
  /// More rows, in the widths begin() fixed.
  std::string rows(const std::vector<text_row>& more);
  /// "(N rows)".
  static std::string footer(std::uint64_t n);

private:
  std::vector<std::string> headers_;
  std::vector<bool> right_align_;
  std::vector<std::size_t> widths_;
};

/// Display width of `s`: UTF-8 code points (continuation bytes do not count).
std::size_t display_width(std::string_view s);

/// `s` with control characters (other than newline) and invalid UTF-8
/// bytes replaced by visible escapes (\t, \x1b, \xff), so output cannot
/// drive the terminal.
std::string sanitize(std::string_view s);

} // namespace pgcm::cli
