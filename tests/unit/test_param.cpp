#define BOOST_TEST_MODULE test_param
#include <boost/test/unit_test.hpp>

#include "pgcm/param.hpp"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

using pgcm::param;

namespace {

/// The text of a non-NULL param; fails the test if it is NULL.
std::string text_of(const param& p) {
  BOOST_TEST_REQUIRE(!p.is_null());
  return p.text;
}

enum unscoped_enum { unscoped_value = 1 };
enum class scoped_enum { value = 1 };

void takes_params(const std::vector<param>& ps, std::size_t expected_size) {
  BOOST_TEST(ps.size() == expected_size);
}

} // namespace

// -- compile-time contract -------------------------------------------------------------------

// Accepted.
static_assert(std::is_convertible_v<int, param>);
static_assert(std::is_convertible_v<std::int8_t, param>);
static_assert(std::is_convertible_v<std::uint8_t, param>);
static_assert(std::is_convertible_v<unsigned long long, param>);
static_assert(std::is_convertible_v<bool, param>);
static_assert(std::is_convertible_v<float, param>);
static_assert(std::is_convertible_v<double, param>);
static_assert(std::is_convertible_v<long double, param>);
static_assert(std::is_convertible_v<const char*, param>);
static_assert(std::is_convertible_v<char*, param>);
static_assert(std::is_convertible_v<const char (&)[4], param>);
static_assert(std::is_convertible_v<std::string, param>);
static_assert(std::is_convertible_v<const std::string&, param>);
static_assert(std::is_convertible_v<std::string_view, param>);
static_assert(std::is_convertible_v<std::nullopt_t, param>);
static_assert(std::is_convertible_v<std::nullptr_t, param>);
static_assert(std::is_convertible_v<std::optional<int>, param>);
static_assert(std::is_convertible_v<const std::optional<std::string>&, param>);
static_assert(std::is_convertible_v<std::optional<double>, param>);
static_assert(std::is_convertible_v<std::optional<bool>, param>);
static_assert(std::is_convertible_v<std::optional<const char*>, param>);
static_assert(std::is_convertible_v<std::optional<std::string_view>, param>);

// Rejected: characters (ambiguous), pointers other than char pointers (no silent bool),
// enumerations, optionals of rejected types.
static_assert(!std::is_constructible_v<param, char>);
static_assert(!std::is_constructible_v<param, wchar_t>);
static_assert(!std::is_constructible_v<param, char16_t>);
static_assert(!std::is_constructible_v<param, char32_t>);
static_assert(!std::is_constructible_v<param, int*>);
static_assert(!std::is_constructible_v<param, void*>);
static_assert(!std::is_constructible_v<param, const double*>);
static_assert(!std::is_constructible_v<param, scoped_enum>);
static_assert(!std::is_constructible_v<param, unscoped_enum>);
static_assert(!std::is_constructible_v<param, std::optional<char>>);
static_assert(!std::is_constructible_v<param, std::optional<int*>>);

BOOST_AUTO_TEST_CASE(default_and_nulls) {
  BOOST_TEST(param{}.is_null());
  BOOST_TEST(param{}.text.empty());
  BOOST_TEST(param{std::nullopt}.is_null());
  BOOST_TEST(param{nullptr}.is_null());
  BOOST_TEST(param{static_cast<const char*>(nullptr)}.is_null());
  BOOST_TEST(param{std::optional<int>{}}.is_null());
  BOOST_TEST(param{std::optional<std::string>{}}.is_null());
  BOOST_TEST(param{std::optional<const char*>{nullptr}}.is_null());
  param p = std::nullopt;
  BOOST_TEST(p.null);
}

BOOST_AUTO_TEST_CASE(integers) {
  BOOST_TEST(text_of(0) == "0");
  BOOST_TEST(text_of(42) == "42");
  BOOST_TEST(text_of(-7) == "-7");
  BOOST_TEST(text_of(std::int8_t{-128}) == "-128");
  BOOST_TEST(text_of(std::uint8_t{255}) == "255");
  BOOST_TEST(text_of(static_cast<signed char>(65)) == "65");
  BOOST_TEST(text_of(std::int16_t{-32768}) == "-32768");
  BOOST_TEST(text_of(std::uint16_t{65535}) == "65535");
  BOOST_TEST(text_of(std::numeric_limits<std::int32_t>::min()) == "-2147483648");
  BOOST_TEST(text_of(std::numeric_limits<std::uint32_t>::max()) == "4294967295");
  BOOST_TEST(text_of(std::numeric_limits<std::int64_t>::min()) == "-9223372036854775808");
  BOOST_TEST(text_of(std::numeric_limits<std::int64_t>::max()) == "9223372036854775807");
  BOOST_TEST(text_of(std::numeric_limits<std::uint64_t>::max()) == "18446744073709551615");
  BOOST_TEST(text_of(std::numeric_limits<long long>::min()) == "-9223372036854775808");
  BOOST_TEST(text_of(short{-3}) == "-3");
  BOOST_TEST(text_of(3u) == "3");
  BOOST_TEST(text_of(3ul) == "3");
  BOOST_TEST(text_of(std::size_t{12345}) == "12345");
}

BOOST_AUTO_TEST_CASE(booleans) {
  BOOST_TEST(text_of(true) == "true");
  BOOST_TEST(text_of(false) == "false");
  BOOST_TEST(text_of(std::optional<bool>{false}) == "false");
}

BOOST_AUTO_TEST_CASE(floating_point) {
  BOOST_TEST(text_of(1.5) == "1.5");
  BOOST_TEST(text_of(0.1) == "0.1");
  BOOST_TEST(text_of(0.1f) == "0.1"); // shortest for float, not 0.100000001...
  BOOST_TEST(text_of(-2.0) == "-2");
  BOOST_TEST(text_of(0.0) == "0");
  BOOST_TEST(text_of(-0.0) == "-0");
  BOOST_TEST(text_of(1e300) == "1e+300");
  BOOST_TEST(text_of(5e-324) == "5e-324");
  BOOST_TEST(text_of(std::numeric_limits<double>::max()) == "1.7976931348623157e+308");
  BOOST_TEST(text_of(1.0 / 3.0) == "0.3333333333333333");
  BOOST_TEST(text_of(123456789.0) == "123456789");
  BOOST_TEST(text_of(std::numeric_limits<double>::quiet_NaN()) == "NaN");
  BOOST_TEST(text_of(-std::numeric_limits<double>::quiet_NaN()) == "NaN");
  BOOST_TEST(text_of(std::numeric_limits<float>::quiet_NaN()) == "NaN");
  BOOST_TEST(text_of(std::numeric_limits<double>::infinity()) == "Infinity");
  BOOST_TEST(text_of(-std::numeric_limits<double>::infinity()) == "-Infinity");
  BOOST_TEST(text_of(std::numeric_limits<float>::infinity()) == "Infinity");
  BOOST_TEST(text_of(-std::numeric_limits<float>::infinity()) == "-Infinity");
  BOOST_TEST(text_of(2.5L) == "2.5");
  BOOST_TEST(text_of(std::optional<double>{0.25}) == "0.25");
}

BOOST_AUTO_TEST_CASE(strings) {
  BOOST_TEST(text_of("x") == "x");
  BOOST_TEST(text_of("") == "");
  BOOST_TEST(!param{""}.is_null()); // empty string is not NULL
  BOOST_TEST(!param{std::string{}}.is_null());
  BOOST_TEST(!param{std::string_view{}}.is_null());
  BOOST_TEST(text_of(std::string("y")) == "y");
  BOOST_TEST(text_of(std::string_view("abc").substr(1)) == "bc");
  const std::string lvalue = "it's \"quoted\"; DROP TABLE x; --";
  BOOST_TEST(text_of(lvalue) == lvalue); // sent as is, never spliced
  char buf[] = "mutable";
  BOOST_TEST(text_of(buf) == "mutable");
  BOOST_TEST(text_of(std::optional<std::string>{"opt"}) == "opt");
  BOOST_TEST(text_of(std::optional<std::string_view>{"sv"}) == "sv");
  BOOST_TEST(text_of(std::optional<const char*>{"cp"}) == "cp");
  BOOST_TEST(text_of("\xc3\xa9t\xc3\xa9") == "\xc3\xa9t\xc3\xa9"); // UTF-8 untouched
}

BOOST_AUTO_TEST_CASE(vector_initialization) {
  std::vector<param> ps = {
      2, 3, "x", std::string("y"), 1.5, true, std::nullopt, std::int64_t{-7}, std::optional<int>{}};
  BOOST_TEST_REQUIRE(ps.size() == 9u);
  BOOST_TEST(ps[0].text == "2");
  BOOST_TEST(ps[1].text == "3");
  BOOST_TEST(ps[2].text == "x");
  BOOST_TEST(ps[3].text == "y");
  BOOST_TEST(ps[4].text == "1.5");
  BOOST_TEST(ps[5].text == "true");
  BOOST_TEST(ps[6].is_null());
  BOOST_TEST(ps[7].text == "-7");
  BOOST_TEST(ps[8].is_null());

  std::vector<param> empty = {};
  BOOST_TEST(empty.empty());
  takes_params({}, 0);
  takes_params({2}, 1); // one parameter, not "a vector of 2"
  takes_params({0}, 1); // 0 is the integer 0, not a null pointer
  BOOST_TEST(param{0}.text == "0");
  takes_params({std::nullopt}, 1);
  takes_params({1, "two", 3.0}, 3);
}

BOOST_AUTO_TEST_CASE(equality) {
  BOOST_TEST((param{} == param{std::nullopt}));
  BOOST_TEST((param{1} == param{"1"})); // same text: the server sees the same thing
  BOOST_TEST((param{1} != param{2}));
  BOOST_TEST((param{} != param{""})); // NULL is not the empty string
  BOOST_TEST((param{true} == param{"true"}));
  param weird; // a NULL whose text was set by hand still equals NULL
  weird.text = "junk";
  BOOST_TEST((weird == param{}));
}

BOOST_AUTO_TEST_CASE(public_members) {
  param p;
  p.null = false;
  p.text = "abc";
  BOOST_TEST((p == param{"abc"}));
  const param q = 5;
  BOOST_TEST(!q.null);
  BOOST_TEST(q.text == "5");
}
