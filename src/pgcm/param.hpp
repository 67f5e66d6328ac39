#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace pgcm {

namespace detail {

/// True for the character types `param` refuses: `char`, `wchar_t`, `char8_t`, `char16_t`,
/// `char32_t`. (`signed char` / `unsigned char`, i.e. `int8_t` / `uint8_t`, are integers.)
template <class T>
inline constexpr bool is_param_char_v = std::is_same_v<T, char> || std::is_same_v<T, wchar_t> ||
                                        std::is_same_v<T, char16_t> || std::is_same_v<T, char32_t>
#ifdef __cpp_char8_t
                                        || std::is_same_v<T, char8_t>
#endif
    ;

/// True for the integer types `param` formats as decimal numbers.
template <class T>
inline constexpr bool is_param_integer_v =
    std::is_integral_v<T> && !std::is_same_v<T, bool> && !is_param_char_v<T>;

/// Decimal text of `x` (std::to_chars).
std::string format_signed(long long x);
/// Decimal text of `x` (std::to_chars).
std::string format_unsigned(unsigned long long x);
/// Shortest text that reads back as exactly `x` (std::to_chars); "NaN", "Infinity",
/// "-Infinity" for the non-finite values (the spellings PostgreSQL accepts).
std::string format_floating(float x);
/// \copydoc format_floating(float)
std::string format_floating(double x);
/// \copydoc format_floating(float)
std::string format_floating(long double x);

} // namespace detail

/// One query parameter (`$1`, `$2`, ...), sent to the server in text format as a separate
/// protocol value: it is never spliced into the SQL text, so it needs no quoting or escaping.
///
/// A `param` is either NULL (`null == true`, `text` empty) or a text value (`null == false`).
/// The server infers the parameter's type from the statement; cast in SQL where that is
/// ambiguous (e.g. `$1::int8`).
///
/// Implicit conversions, so that `{1, "x", std::nullopt}` builds a `std::vector<param>`:
/// - `std::nullopt`, `nullptr`, a null `const char*`, an empty `std::optional` → NULL;
/// - integers (`short` ... `unsigned long long`, `int8_t` / `uint8_t` included) → decimal text;
/// - `bool` → "true" / "false" (only `bool` itself: pointers do not convert to `bool` here);
/// - `float`, `double`, `long double` → the shortest text that reads back as the same value;
///   NaN → "NaN", ±infinity → "Infinity" / "-Infinity";
/// - `const char*`, `std::string`, `std::string_view` → the text as is;
/// - `std::optional<T>` of any of these → NULL or the converted value.
///
/// Character types (`char`, `wchar_t`, `char8_t`, `char16_t`, `char32_t`) are rejected at
/// compile time: `'a'` could mean the number 97 or the string "a", so pass `"a"`,
/// `std::string(1, c)` or `int{c}` to say which. Enumerations are rejected too (convert them
/// explicitly). Text must not contain NUL bytes (PostgreSQL text cannot hold them).
class param {
public:
  /// True if this is SQL NULL; `text` is then empty.
  bool null = true;
  /// The value in PostgreSQL text format; empty if `null`.
  std::string text;

  /// NULL.
  param() noexcept = default;

  /// NULL.
  param(std::nullopt_t) noexcept {}

  /// NULL.
  param(std::nullptr_t) noexcept {}

  /// Decimal text of an integer, e.g. "-7".
  template <class T, std::enable_if_t<detail::is_param_integer_v<T>, int> = 0>
  param(T x) : null(false) {
    static_assert(sizeof(T) <= sizeof(long long), "integers wider than 64 bits are not supported");
    if constexpr (std::is_signed_v<T>)
      text = detail::format_signed(static_cast<long long>(x));
    else
      text = detail::format_unsigned(static_cast<unsigned long long>(x));
  }

  /// "true" or "false". Constrained to `bool` itself so pointers never convert silently.
  template <class T, std::enable_if_t<std::is_same_v<T, bool>, int> = 0>
  param(T x) : null(false), text(x ? "true" : "false") {}

  /// Shortest round-trip text of a floating-point value; "NaN", "Infinity", "-Infinity".
  template <class T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
  param(T x) : null(false), text(detail::format_floating(x)) {}

  /// Character types are ambiguous (number or string?) and therefore rejected; see above.
  template <class T, std::enable_if_t<detail::is_param_char_v<T>, int> = 0> param(T) = delete;

  /// The text of a C string; NULL if `s` is a null pointer.
  param(const char* s) {
    if (s != nullptr) {
      null = false;
      text = s;
    }
  }

  /// The text as is.
  param(std::string s) noexcept : null(false), text(std::move(s)) {}

  /// The text as is.
  param(std::string_view s) : null(false), text(s) {}

  /// NULL if `x` is empty, otherwise `param(*x)`. Available for every `T` that converts to
  /// `param` (so not for `std::optional<char>`).
  template <class T, std::enable_if_t<std::is_constructible_v<param, T&&>, int> = 0>
  param(std::optional<T> x) {
    if (x.has_value()) *this = param(std::move(*x));
  }

  /// True if this is SQL NULL.
  bool is_null() const noexcept { return null; }

  /// Equal if both are NULL, or both are non-NULL with the same text.
  friend bool operator==(const param& x, const param& y) noexcept {
    return x.null == y.null && (x.null || x.text == y.text);
  }

  friend bool operator!=(const param& x, const param& y) noexcept { return !(x == y); }
};

} // namespace pgcm
