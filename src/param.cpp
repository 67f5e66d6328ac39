#include "pgcm/param.hpp"

#include <charconv>
#include <cmath>
#include <system_error>

namespace pgcm::detail {

namespace {

template <class T> std::string format_number(T x) {
  char buf[24]; // 20 digits + sign for 64-bit integers
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), x);
  (void)ec; // cannot fail: the buffer holds every 64-bit integer
  return std::string(buf, end);
}

template <class T> std::string format_float(T x) {
  if (std::isnan(x)) return "NaN";
  if (std::isinf(x)) return x < 0 ? "-Infinity" : "Infinity";
  // Shortest round-trip form; long double needs at most ~30 characters.
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), x);
  if (ec != std::errc{}) // unreachable with this buffer size; be safe anyway
    return std::to_string(x);
  return std::string(buf, end);
}

} // namespace

std::string format_signed(long long x) {
  return format_number(x);
}

std::string format_unsigned(unsigned long long x) {
  return format_number(x);
}

std::string format_floating(float x) {
  return format_float(x);
}

std::string format_floating(double x) {
  return format_float(x);
}

std::string format_floating(long double x) {
  return format_float(x);
}

} // namespace pgcm::detail
