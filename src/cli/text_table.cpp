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

table_stream::table_stream(std::vector<std::string> headers, std::vector<bool> right_align)
    : headers_(std::move(headers)), right_align_(std::move(right_align)) {}

std::string table_stream::begin(const std::vector<text_row>& first) {
  const auto ncols = headers_.size();
  widths_.assign(ncols, 0);
  for (std::size_t c = 0; c < ncols; ++c)
    widths_[c] = display_width(headers_[c]);
  for (auto& row : first)
    for (std::size_t c = 0; c < ncols; ++c) {
      std::string text = c < row.size() && row[c] ? sanitize(*row[c]) : std::string{};
      for (auto& l : split_lines(text))
        widths_[c] = std::max(widths_[c], display_width(l));
    }
  std::string out;
  auto trim_line = [&out] {
    while (!out.empty() && out.back() == ' ')
      out.pop_back();
    out.push_back('\n');
  };
  // Header, centered.
  for (std::size_t c = 0; c < ncols; ++c) {
    if (c > 0) out += "|";
    auto w = display_width(headers_[c]);
    auto left = (widths_[c] - w) / 2;
    out += " ";
    pad(out, left);
    out += headers_[c];
    pad(out, widths_[c] - w - left);
    out += " ";
  }
  trim_line();
  for (std::size_t c = 0; c < ncols; ++c) {
    if (c > 0) out += "+";
    out.append(widths_[c] + 2, '-');
  }
  out.push_back('\n');
  return out + rows(first);
}

std::string table_stream::rows(const std::vector<text_row>& more) {
  const auto ncols = headers_.size();
  auto right = [&](std::size_t c) { return c < right_align_.size() && right_align_[c]; };
  std::string out;
  auto trim_line = [&out] {
    while (!out.empty() && out.back() == ' ')
      out.pop_back();
    out.push_back('\n');
  };
  for (auto& row : more) {
    std::vector<std::vector<std::string>> r;
    std::size_t height = 1;
    for (std::size_t c = 0; c < ncols; ++c) {
      std::string text = c < row.size() && row[c] ? sanitize(*row[c]) : std::string{};
      r.push_back(split_lines(text));
      height = std::max(height, r.back().size());
    }
    for (std::size_t l = 0; l < height; ++l) {
      for (std::size_t c = 0; c < ncols; ++c) {
        if (c > 0) out += "|";
        const auto& lines = r[c];
        std::string text = l < lines.size() ? lines[l] : std::string{};
        auto w = display_width(text);
        // A cell wider than the widths fixed at the start overflows its column.
        auto fill = widths_[c] > w ? widths_[c] - w : 0;
        out += " ";
        if (right(c)) {
          pad(out, fill);
          out += text;
        } else {
          out += text;
          pad(out, fill);
        }
        out += l + 1 < lines.size() ? "+" : " ";
      }
      trim_line();
    }
  }
  return out;
}

std::string table_stream::footer(std::uint64_t n) {
  return "(" + std::to_string(n) + (n == 1 ? " row)\n" : " rows)\n");
}

std::string render(const text_table& t) {
  table_stream s{t.headers, t.right_align};
  auto out = s.begin(t.rows);
  if (t.footer) out += table_stream::footer(t.rows.size());
  return out;
}

} // namespace pgcm::cli
