#include "pgcm/routing.hpp"

#include <cctype>
#include <cstdio>

#include "pgcm/error.hpp"

namespace pgcm {

std::string to_string(target x) {
  switch (x) {
  case target::primary:
    return "primary";
  case target::standby:
    return "standby";
  case target::prefer_standby:
    return "prefer-standby";
  case target::any:
    return "any";
  }
  return "?";
}

std::optional<target> parse_target(const std::string& text) {
  if (text == "primary") return target::primary;
  if (text == "standby") return target::standby;
  if (text == "prefer-standby" || text == "prefer_standby") return target::prefer_standby;
  if (text == "any") return target::any;
  return std::nullopt;
}

std::string lsn::to_string() const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(value >> 32),
                static_cast<unsigned>(value & 0xFFFFFFFFu));
  return buf;
}

namespace {

// Parses 1 to 8 hex digits at [b, e); false when anything else is there.
bool parse_hex32(const std::string& s, std::size_t b, std::size_t e, std::uint64_t& out) {
  if (e <= b || e - b > 8) return false;
  out = 0;
  for (auto i = b; i < e; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (!std::isxdigit(c)) return false;
    out = out * 16 +
          static_cast<std::uint64_t>(std::isdigit(c) ? c - '0' : std::tolower(c) - 'a' + 10);
  }
  return true;
}

} // namespace

lsn lsn::parse(const std::string& text) {
  auto slash = text.find('/');
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  if (slash == std::string::npos || !parse_hex32(text, 0, slash, hi) ||
      !parse_hex32(text, slash + 1, text.size(), lo))
    throw error(errc::invalid_argument, "invalid WAL position \"" + text +
                                            "\": expected two hex numbers as in 16/B374D848");
  return lsn{hi << 32 | lo};
}

} // namespace pgcm
