#include "text_table.hpp"

#include <algorithm>

namespace pgcm::cli {

namespace {

/// Length of the UTF-8 sequence starting at s[i], or 0 if invalid.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  std::size_t n;
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0 && c >= 0xc2)
    n = 2;
  else if ((c & 0xf0) == 0xe0)
    n = 3;
  else if ((c & 0xf8) == 0xf0 && c <= 0xf4)
    n = 4;
  else
    return 0;
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return 0;
  return n;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    auto nl = s.find('\n', start);
    if (nl == std::string::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, nl - start));
    start = nl + 1;
  }
}

void pad(std::string& out, std::size_t n) {
  out.append(n, ' ');
}

} // namespace

std::size_t display_width(std::string_view s) {
  std::size_t w = 0;
  for (char c : s)
    if ((static_cast<unsigned char>(c) & 0xc0) != 0x80) ++w;
  return w;
}

std::string sanitize(std::string_view s) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    auto n = utf8_length(s, i);
    if (c == '\n') {
      out.push_back('\n');
      ++i;
    } else if (c == '\t') {
      out += "\\t";
      ++i;
    } else if (c == '\r') {
      out += "\\r";
      ++i;
    } else if (n == 0 || c < 0x20 || c == 0x7f) {
      out += "\\x";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
      ++i;
    } else if (n == 2 && c == 0xc2 && static_cast<unsigned char>(s[i + 1]) < 0xa0) {
      out += "\\u00"; // C1 control characters (e.g. CSI)
      out.push_back(hex[static_cast<unsigned char>(s[i + 1]) >> 4]);
      out.push_back(hex[static_cast<unsigned char>(s[i + 1]) & 15]);
      i += 2;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string render(const text_table& t) {
  const auto ncols = t.headers.size();
  // Cells as lines, sanitized.
  std::vector<std::vector<std::vector<std::string>>> cells;
  std::vector<std::size_t> widths(ncols, 0);
  for (std::size_t c = 0; c < ncols; ++c)
    widths[c] = display_width(t.headers[c]);
  for (auto& row : t.rows) {
    std::vector<std::vector<std::string>> r;
    for (std::size_t c = 0; c < ncols; ++c) {
      std::string text = c < row.size() && row[c] ? sanitize(*row[c]) : std::string{};
      auto lines = split_lines(text);
      for (auto& l : lines)
        widths[c] = std::max(widths[c], display_width(l));
      r.push_back(std::move(lines));
    }
    cells.push_back(std::move(r));
  }
  auto right = [&](std::size_t c) { return c < t.right_align.size() && t.right_align[c]; };

  std::string out;
  auto trim_line = [&out] {
    while (!out.empty() && out.back() == ' ')
      out.pop_back();
    out.push_back('\n');
  };
  // Header, centered.
  for (std::size_t c = 0; c < ncols; ++c) {
    if (c > 0) out += "|";
    auto w = display_width(t.headers[c]);
    auto left = (widths[c] - w) / 2;
    out += " ";
    pad(out, left);
    out += t.headers[c];
    pad(out, widths[c] - w - left);
    out += " ";
  }
  trim_line();
  for (std::size_t c = 0; c < ncols; ++c) {
    if (c > 0) out += "+";
    out.append(widths[c] + 2, '-');
  }
  out.push_back('\n');
  for (auto& r : cells) {
    std::size_t height = 1;
    for (auto& lines : r)
      height = std::max(height, lines.size());
    for (std::size_t l = 0; l < height; ++l) {
      for (std::size_t c = 0; c < ncols; ++c) {
        if (c > 0) out += "|";
        const auto& lines = r[c];
        std::string text = l < lines.size() ? lines[l] : std::string{};
        auto w = display_width(text);
        out += " ";
        if (right(c)) {
          pad(out, widths[c] - w);
          out += text;
        } else {
          out += text;
          pad(out, widths[c] - w);
        }
        out += l + 1 < lines.size() ? "+" : " ";
      }
      trim_line();
    }
  }
  if (t.footer)
    out += "(" + std::to_string(t.rows.size()) + (t.rows.size() == 1 ? " row)\n" : " rows)\n");
  return out;
}

} // namespace pgcm::cli
