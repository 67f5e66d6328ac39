#define BOOST_TEST_MODULE test_result_set
#include <boost/test/unit_test.hpp>

#include "pgcm/result_set.hpp"
#include "pq_result.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

using pgcm::errc;
using pgcm::result_set;
using pgcm::row;

// -- a user type with its own value_traits and from_row ---------------------------------------

namespace app {

enum class color { red, green };

/// Converted by a user value_traits specialization with a name.
struct point {
  int x = 0;
  int y = 0;
  friend bool operator==(const point& a, const point& b) { return a.x == b.x && a.y == b.y; }
};

/// Converted by a user value_traits specialization without a name, whose from_text throws a
/// plain std::exception.
struct version {
  int major = 0;
};

/// Converted by a user value_traits that throws a pgcm::error of another category.
struct strict_thing {};

/// A user type mapped with from_row found by ADL.
struct user {
  std::int64_t id = 0;
  std::string name;
  std::optional<std::string> email;
  bool active = false;
};

void from_row(const pgcm::row& r, user& u) {
  u.id = r.get<std::int64_t>("id");
  u.name = r.get<std::string>("name");
  u.email = r.get<std::optional<std::string>>("email");
  u.active = r.get<bool>("active");
}

} // namespace app

template <> struct pgcm::value_traits<app::color> {
  static constexpr std::string_view name = "color";
  static app::color from_text(std::string_view text) {
    if (text == "red") return app::color::red;
    if (text == "green") return app::color::green;
    pgcm::throw_conversion_error(text, name);
  }
};

template <> struct pgcm::value_traits<app::point> {
  static constexpr std::string_view name = "point";
  // PostgreSQL's point output, restricted to integers: "(x,y)".
  static app::point from_text(std::string_view text) {
    if (text.size() < 5 || text.front() != '(' || text.back() != ')')
      pgcm::throw_conversion_error(text, name);
    auto comma = text.find(',');
    if (comma == std::string_view::npos) pgcm::throw_conversion_error(text, name);
    return {value_traits<int>::from_text(text.substr(1, comma - 1)),
            value_traits<int>::from_text(text.substr(comma + 1, text.size() - comma - 2))};
  }
  // NULL is the origin.
  static app::point from_null() { return {}; }
};

template <> struct pgcm::value_traits<app::version> {
  static app::version from_text(std::string_view text) {
    if (text.empty() || text[0] != 'v') throw std::invalid_argument("versions start with 'v'");
    return {value_traits<int>::from_text(text.substr(1))};
  }
};

template <> struct pgcm::value_traits<app::strict_thing> {
  static app::strict_thing from_text(std::string_view) {
    throw pgcm::error(pgcm::errc::invalid_argument, "strict thing says no");
  }
};

// -- helpers ---------------------------------------------------------------------------------

namespace {

/// Checks that `expr` throws pgcm::error with the given code and exact message.
#define CHECK_PGCM_ERROR(expr, expected_code, expected_message)                                    \
  do {                                                                                             \
    bool thrown_ = false;                                                                          \
    try {                                                                                          \
      (void)(expr);                                                                                \
    } catch (const pgcm::error& e_) {                                                              \
      thrown_ = true;                                                                              \
      BOOST_TEST(static_cast<int>(e_.code()) == static_cast<int>(expected_code));                  \
      BOOST_TEST(std::string(e_.what()) == std::string(expected_message));                         \
    }                                                                                              \
    BOOST_TEST(thrown_, "expected pgcm::error from " #expr);                                       \
  } while (false)

/// One row, one column "v" holding `text` (or NULL).
result_set single(std::optional<std::string_view> text, std::string name = "v") {
  result_set rs({std::move(name)}, {25});
  rs.add_row({text});
  return rs;
}

template <class T> T convert(std::optional<std::string_view> text) {
  auto rs = single(text);
  return rs[0].get<T>(0);
}

/// A sample: id int8, name text, email text (nullable), active bool.
result_set users() {
  result_set rs({"id", "name", "email", "active"}, {20, 25, 25, 16});
  rs.add_row({"1", "ann", "ann@example.org", "t"});
  rs.add_row({"2", "bob", std::nullopt, "f"});
  rs.add_row({"3", "", "", "true"});
  rs.set_affected_rows(3);
  rs.set_command("SELECT 3");
  return rs;
}

struct pg_result_deleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using pg_result_ptr = std::unique_ptr<PGresult, pg_result_deleter>;

/// A PGresult built without a server: columns (name, type oid), rows of optional cells.
pg_result_ptr make_pg_result(const std::vector<std::pair<std::string, Oid>>& cols,
                             const std::vector<std::vector<std::optional<std::string>>>& rows) {
  pg_result_ptr res{PQmakeEmptyPGresult(nullptr, PGRES_TUPLES_OK)};
  BOOST_TEST_REQUIRE(static_cast<bool>(res));
  std::vector<PGresAttDesc> descs(cols.size());
  for (std::size_t i = 0; i < cols.size(); ++i) {
    descs[i].name = const_cast<char*>(cols[i].first.c_str()); // libpq copies it
    descs[i].tableid = 0;
    descs[i].columnid = 0;
    descs[i].format = 0;
    descs[i].typid = cols[i].second;
    descs[i].typlen = -1;
    descs[i].atttypmod = -1;
  }
  if (!cols.empty())
    BOOST_TEST_REQUIRE(PQsetResultAttrs(res.get(), static_cast<int>(descs.size()), descs.data()));
  for (std::size_t r = 0; r < rows.size(); ++r) {
    for (std::size_t c = 0; c < rows[r].size(); ++c) {
      const auto& cell = rows[r][c];
      int ok = cell ? PQsetvalue(res.get(), static_cast<int>(r), static_cast<int>(c),
                                 const_cast<char*>(cell->data()), static_cast<int>(cell->size()))
                    : PQsetvalue(res.get(), static_cast<int>(r), static_cast<int>(c), nullptr, -1);
      BOOST_TEST_REQUIRE(ok);
    }
  }
  return res;
}

} // namespace

// -- compile-time contract -------------------------------------------------------------------

static_assert(
    std::is_same_v<decltype(std::declval<const row&>().get<std::string>(0)), std::string>);
static_assert(std::is_same_v<decltype(std::declval<const row&>().get<int>("a")), int>);
static_assert(std::is_same_v<std::iterator_traits<result_set::iterator>::value_type, row>);
static_assert(std::is_same_v<std::iterator_traits<result_set::iterator>::iterator_category,
                             std::random_access_iterator_tag>);
static_assert(std::is_default_constructible_v<result_set::iterator>);
static_assert(std::is_nothrow_move_constructible_v<result_set>);
static_assert(std::is_trivially_copyable_v<row>);

// -- building --------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(default_constructed) {
  result_set rs;
  BOOST_TEST(rs.empty());
  BOOST_TEST(rs.size() == 0u);
  BOOST_TEST(rs.column_count() == 0u);
  BOOST_TEST(rs.columns().empty());
  BOOST_TEST(rs.affected_rows() == -1);
  BOOST_TEST(rs.command() == "");
  BOOST_TEST((rs.begin() == rs.end()));
  BOOST_TEST(rs.raw().is_consistent());
  BOOST_TEST((rs == result_set{}));
}

BOOST_AUTO_TEST_CASE(constructor_checks_oids) {
  result_set no_oids({"a", "b"});
  BOOST_TEST(no_oids.type_oid(0) == 0u);
  BOOST_TEST(no_oids.type_oid(1) == 0u);
  CHECK_PGCM_ERROR(result_set({"a", "b"}, {23}), errc::invalid_argument,
                   "result_set: 2 column names but 1 type OIDs");
}

BOOST_AUTO_TEST_CASE(add_row_and_low_level_builder) {
  result_set rs({"a", "b"}, {23, 25});
  rs.reserve(4, 64);
  rs.add_row({"1", std::nullopt});
  rs.append_cell("22", 2);
  rs.append_cell(std::string_view{"x"});
  rs.end_row();
  rs.append_null();
  rs.append_null();
  rs.end_row();
  const std::string s = "lvalue";
  rs.add_row({s, std::string_view{}});
  BOOST_TEST_REQUIRE(rs.size() == 4u);
  BOOST_TEST(rs[0].text(0) == "1");
  BOOST_TEST(rs[0].is_null(1));
  BOOST_TEST(rs[1].text("a") == "22");
  BOOST_TEST(rs[1].text("b") == "x");
  BOOST_TEST(rs[2].is_null(0));
  BOOST_TEST(rs[2].is_null(1));
  BOOST_TEST(rs[2].text(0) == ""); // NULL reads as empty text
  BOOST_TEST(rs[3].text(0) == "lvalue");
  BOOST_TEST(!rs[3].is_null(1)); // empty string, not NULL
  BOOST_TEST(rs[3].text(1) == "");
  BOOST_TEST(rs.raw().is_consistent());
  BOOST_TEST(rs.raw().values == "122xlvalue");
}

BOOST_AUTO_TEST_CASE(builder_rejects_wrong_cell_counts) {
  result_set rs({"a", "b"});
  rs.add_row({"1", "2"});
  const result_set before = rs;
  CHECK_PGCM_ERROR(rs.add_row({"only one"}), errc::invalid_argument,
                   "result_set::add_row: 1 cells for 2 columns");
  BOOST_TEST((rs == before));
  rs.append_cell("3", 1);
  CHECK_PGCM_ERROR(rs.end_row(), errc::invalid_argument,
                   "result_set::end_row: 1 cells for 2 columns");
  BOOST_TEST((rs == before)); // partial row discarded
  rs.append_cell("3", 1);
  rs.append_null();
  rs.append_cell("4", 1);
  CHECK_PGCM_ERROR(rs.end_row(), errc::invalid_argument,
                   "result_set::end_row: 3 cells for 2 columns");
  BOOST_TEST((rs == before));
  BOOST_TEST(rs.raw().is_consistent());
  rs.add_row({"3", "4"});
  BOOST_TEST(rs.size() == 2u);
  BOOST_TEST(rs[1].text(1) == "4");
}

BOOST_AUTO_TEST_CASE(zero_columns_with_rows) {
  // SELECT FROM generate_series(1, 3): three rows, no columns.
  result_set rs;
  rs.add_row({});
  rs.end_row();
  rs.add_row({});
  BOOST_TEST(rs.size() == 3u);
  BOOST_TEST(!rs.empty());
  BOOST_TEST(rs.column_count() == 0u);
  std::size_t n = 0;
  for (row r : rs) {
    BOOST_TEST(r.size() == 0u);
    BOOST_TEST(r.index() == n);
    ++n;
  }
  BOOST_TEST(n == 3u);
  CHECK_PGCM_ERROR(rs[0].text(0), errc::column_not_found,
                   "column index 0 out of range (the row has 0 columns)");
  CHECK_PGCM_ERROR(rs[0].get<int>("x"), errc::column_not_found,
                   "column \"x\" not found; the result has no columns");
  BOOST_TEST(rs.raw().is_consistent());
  BOOST_TEST(pgcm::map_rows<std::tuple<>>(rs).size() == 3u);
}

// -- access ----------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(columns_and_metadata) {
  const auto rs = users();
  BOOST_TEST(rs.size() == 3u);
  BOOST_TEST(!rs.empty());
  BOOST_TEST(rs.column_count() == 4u);
  BOOST_TEST((rs.columns() == std::vector<std::string>{"id", "name", "email", "active"}));
  BOOST_TEST(rs.column_name(2) == "email");
  BOOST_TEST(rs.column_index("id") == 0u);
  BOOST_TEST(rs.column_index("active") == 3u);
  BOOST_TEST(rs.column_index(std::string("name")) == 1u);
  BOOST_TEST(rs.find_column("email").value() == 2u);
  BOOST_TEST(!rs.find_column("nope").has_value());
  BOOST_TEST(!rs.find_column("ID").has_value()); // case-sensitive
  BOOST_TEST(rs.type_oid(0) == 20u);
  BOOST_TEST(rs.type_oid(3) == 16u);
  BOOST_TEST(rs.affected_rows() == 3);
  BOOST_TEST(rs.command() == "SELECT 3");
  CHECK_PGCM_ERROR(rs.column_index("nope"), errc::column_not_found,
                   "column \"nope\" not found; available columns: \"id\", \"name\", \"email\", "
                   "\"active\"");
  CHECK_PGCM_ERROR(rs.type_oid(4), errc::column_not_found,
                   "column index 4 out of range (the row has 4 columns)");
  CHECK_PGCM_ERROR(rs.column_name(9), errc::column_not_found,
                   "column index 9 out of range (the row has 4 columns)");
}

BOOST_AUTO_TEST_CASE(duplicate_column_names_pick_the_first) {
  result_set rs({"a", "a"});
  rs.add_row({"first", "second"});
  BOOST_TEST(rs.column_index("a") == 0u);
  BOOST_TEST(rs[0].get<std::string>("a") == "first");
  BOOST_TEST(rs[0].get<std::string>(1) == "second");
}

BOOST_AUTO_TEST_CASE(row_access_and_at) {
  const auto rs = users();
  const row r = rs[1];
  BOOST_TEST(r.size() == 4u);
  BOOST_TEST(r.index() == 1u);
  BOOST_TEST(&r.result() == &rs);
  BOOST_TEST(r.columns().size() == 4u);
  BOOST_TEST(r.text("name") == "bob");
  BOOST_TEST(r.is_null("email"));
  BOOST_TEST(!r.is_null("name"));
  BOOST_TEST(r.is_null(2));
  BOOST_TEST(rs.at(2).text(1) == "");
  BOOST_TEST(rs.front().text(1) == "ann");
  BOOST_TEST((rs.at(0) == rs[0]));
  BOOST_TEST((rs.at(0) != rs[1]));
  CHECK_PGCM_ERROR(rs.at(3), errc::invalid_argument,
                   "row index 3 out of range (the result has 3 rows)");
  CHECK_PGCM_ERROR(result_set{}.at(0), errc::invalid_argument,
                   "row index 0 out of range (the result has 0 rows)");
  CHECK_PGCM_ERROR(r.text("nope"), errc::column_not_found,
                   "column \"nope\" not found; available columns: \"id\", \"name\", \"email\", "
                   "\"active\"");
  CHECK_PGCM_ERROR(r.is_null(4), errc::column_not_found,
                   "column index 4 out of range (the row has 4 columns)");
}

BOOST_AUTO_TEST_CASE(index_versus_name_overloads) {
  result_set rs({"s", "n"});
  rs.add_row({"zero", "1"});
  const row r = rs[0];
  // A literal 0 is an index, not a null `const char*`.
  BOOST_TEST(r.get<std::string>(0) == "zero");
  BOOST_TEST(r.text(0) == "zero");
  BOOST_TEST(!r.is_null(0));
  // Every integer type is an index.
  BOOST_TEST(r.get<int>(1) == 1);
  BOOST_TEST(r.get<int>(1u) == 1);
  BOOST_TEST(r.get<int>(1L) == 1);
  BOOST_TEST(r.get<int>(std::size_t{1}) == 1);
  BOOST_TEST(r.get<int>(std::int8_t{1}) == 1);
  BOOST_TEST(r.get<int>(static_cast<unsigned short>(1)) == 1);
  BOOST_TEST(r.get<int>(std::uint64_t{1}) == 1);
  // Names: literal, const char*, std::string, std::string_view.
  const char* cname = "n";
  const std::string sname = "n";
  BOOST_TEST(r.get<int>("n") == 1);
  BOOST_TEST(r.get<int>(cname) == 1);
  BOOST_TEST(r.get<int>(sname) == 1);
  BOOST_TEST(r.get<int>(std::string_view{"n"}) == 1);
  BOOST_TEST(r.get<std::string>(std::string("s")) == "zero");
  BOOST_TEST(r.text(sname) == "1");
  BOOST_TEST(!r.is_null(cname));
  // Out of range, negative.
  CHECK_PGCM_ERROR(r.get<int>(2), errc::column_not_found,
                   "column index 2 out of range (the row has 2 columns)");
  CHECK_PGCM_ERROR(r.get<int>(-1), errc::column_not_found,
                   "column index -1 out of range (the row has 2 columns)");
  CHECK_PGCM_ERROR(r.text(std::numeric_limits<std::int64_t>::min()), errc::column_not_found,
                   "column index -9223372036854775808 out of range (the row has 2 columns)");
  CHECK_PGCM_ERROR(r.get<int>(std::numeric_limits<std::uint64_t>::max()), errc::column_not_found,
                   "column index 18446744073709551615 out of range (the row has 2 columns)");
  CHECK_PGCM_ERROR(r.get<int>(std::string("missing")), errc::column_not_found,
                   "column \"missing\" not found; available columns: \"s\", \"n\"");
}

BOOST_AUTO_TEST_CASE(iteration) {
  const auto rs = users();
  std::vector<std::string> names;
  for (row r : rs)
    names.emplace_back(r.text("name"));
  BOOST_TEST((names == std::vector<std::string>{"ann", "bob", ""}));

  std::vector<std::int64_t> ids;
  for (const auto& r : rs)
    ids.push_back(r.get<std::int64_t>("id"));
  BOOST_TEST((ids == std::vector<std::int64_t>{1, 2, 3}));

  BOOST_TEST(std::distance(rs.begin(), rs.end()) == 3);
  BOOST_TEST((rs.end() - rs.begin()) == 3);
  auto it = rs.begin();
  BOOST_TEST(it->text(1) == "ann");
  BOOST_TEST((*it++).index() == 0u);
  BOOST_TEST((*it).index() == 1u);
  BOOST_TEST((++it)->index() == 2u);
  BOOST_TEST((--it)->index() == 1u);
  BOOST_TEST((it-- == rs.begin() + 1));
  BOOST_TEST((it == rs.cbegin()));
  BOOST_TEST(it[2].text("name") == "");
  BOOST_TEST(((it + 3) == rs.end()));
  BOOST_TEST(((3 + it) == rs.cend()));
  BOOST_TEST(((rs.end() - 3) == it));
  BOOST_TEST((it < rs.end()));
  BOOST_TEST((rs.end() > it));
  BOOST_TEST((it <= it));
  BOOST_TEST((it >= it));
  it += 2;
  BOOST_TEST(it->index() == 2u);
  it -= 1;
  BOOST_TEST(it->index() == 1u);
  BOOST_TEST((result_set::iterator{} == result_set::iterator{}));

  auto found = std::find_if(rs.begin(), rs.end(), [](const row& r) { return r.is_null(2); });
  BOOST_TEST_REQUIRE(static_cast<bool>(found != rs.end()));
  BOOST_TEST(found->get<std::string>("name") == "bob");
  BOOST_TEST(std::count_if(rs.begin(), rs.end(), [](row r) { return r.get<bool>("active"); }) == 2);

  const result_set empty({"a"});
  BOOST_TEST((empty.begin() == empty.end()));
  for (row r : empty) {
    (void)r;
    BOOST_FAIL("an empty result has no rows");
  }
}

BOOST_AUTO_TEST_CASE(copies_and_equality) {
  const auto a = users();
  auto b = a;
  BOOST_TEST((a == b));
  BOOST_TEST(b[1].text("name") == "bob"); // rows of the copy point into the copy
  BOOST_TEST(&b[1].result() == &b);
  b.set_command("SELECT 4");
  BOOST_TEST((a != b));
  b = a;
  b.set_affected_rows(7);
  BOOST_TEST((a != b));
  b = a;
  b.add_row({"4", "x", "y", "f"});
  BOOST_TEST((a != b));

  // Same texts in other cells: NULL vs empty string differ.
  result_set n({"a"}), e({"a"});
  n.add_row({std::nullopt});
  e.add_row({""});
  BOOST_TEST((n != e));
  // Same cell text, different split between cells.
  result_set s1({"a", "b"}), s2({"a", "b"});
  s1.add_row({"ab", "c"});
  s2.add_row({"a", "bc"});
  BOOST_TEST((s1 != s2));
  // Column names and type oids count.
  BOOST_TEST((result_set({"a"}, {23}) != result_set({"a"}, {25})));
  BOOST_TEST((result_set({"a"}) != result_set({"b"})));

  auto moved = std::move(b);
  BOOST_TEST(moved.size() == 4u);
}

BOOST_AUTO_TEST_CASE(storage_round_trip_and_consistency) {
  const auto rs = users();
  const auto& s = rs.raw();
  BOOST_TEST(s.rows == 3u);
  BOOST_TEST(s.ends.size() == 12u);
  BOOST_TEST(s.nulls.size() == 12u);
  BOOST_TEST(s.nulls[6] == 1u); // row 1, column 2 (email of bob)
  BOOST_TEST(s.values == "1annann@example.orgt2bobf3true");
  BOOST_TEST(s.is_consistent());

  // What a deserializer would do.
  result_set copy{result_set::storage{s}};
  BOOST_TEST((copy == rs));
  result_set via_raw;
  via_raw.raw() = s;
  BOOST_TEST(via_raw.raw().is_consistent());
  BOOST_TEST((via_raw == rs));

  auto broken = [&](auto mutate) {
    auto t = s;
    mutate(t);
    BOOST_TEST(!t.is_consistent());
    CHECK_PGCM_ERROR(result_set{t}, errc::invalid_argument, "result_set: inconsistent storage");
  };
  broken([](result_set::storage& t) { t.type_oids.pop_back(); });
  broken([](result_set::storage& t) { t.rows = 4; });
  broken([](result_set::storage& t) { t.ends.pop_back(); });
  broken([](result_set::storage& t) { t.nulls.pop_back(); });
  broken([](result_set::storage& t) { t.values += "x"; });
  broken([](result_set::storage& t) { t.values.pop_back(); });
  broken([](result_set::storage& t) { t.ends[1] = 0; });        // decreasing
  broken([](result_set::storage& t) { t.nulls[0] = 2; });       // not a flag
  broken([](result_set::storage& t) { t.nulls[0] = 1; });       // NULL with text
  broken([](result_set::storage& t) { t.ends.back() = 1000; }); // beyond the text
  broken([](result_set::storage& t) {
    t.names.clear();
    t.type_oids.clear();
  }); // cells without columns

  result_set::storage zero_cols;
  zero_cols.rows = 5;
  BOOST_TEST(zero_cols.is_consistent());
  BOOST_TEST(result_set{zero_cols}.size() == 5u);
}

// -- conversions -----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(strings) {
  BOOST_TEST(convert<std::string>("hello") == "hello");
  BOOST_TEST(convert<std::string>("") == "");
  BOOST_TEST(convert<std::string>(" padded ") == " padded ");
  BOOST_TEST(convert<std::string>("\xc3\xa9") == "\xc3\xa9");
  auto rs = single("view");
  std::string_view v = rs[0].get<std::string_view>(0);
  BOOST_TEST(v == "view");
  BOOST_TEST(v.data() >= rs.raw().values.data()); // a view into the result
  BOOST_TEST((convert<std::optional<std::string>>(std::nullopt) == std::nullopt));
  BOOST_TEST((convert<std::optional<std::string>>("") == std::optional<std::string>{""}));
  BOOST_TEST((convert<std::optional<std::string_view>>(std::nullopt) == std::nullopt));
  CHECK_PGCM_ERROR(convert<std::string>(std::nullopt), errc::conversion_failed,
                   "column \"v\": NULL cannot be converted to std::string (use std::optional)");
  CHECK_PGCM_ERROR(convert<std::string_view>(std::nullopt), errc::conversion_failed,
                   "column \"v\": NULL cannot be converted to std::string_view (use "
                   "std::optional)");
}

BOOST_AUTO_TEST_CASE(booleans) {
  BOOST_TEST(convert<bool>("t") == true);
  BOOST_TEST(convert<bool>("f") == false);
  BOOST_TEST(convert<bool>("true") == true);
  BOOST_TEST(convert<bool>("false") == false);
  BOOST_TEST((convert<std::optional<bool>>("t") == std::optional<bool>{true}));
  BOOST_TEST((convert<std::optional<bool>>(std::nullopt) == std::nullopt));
  for (const char* bad : {"maybe", "", "T", "TRUE", "1", "0", " t", "t ", "yes", "tru"}) {
    auto rs = single(std::string_view{bad}, "active");
    CHECK_PGCM_ERROR(rs[0].get<bool>("active"), errc::conversion_failed,
                     "column \"active\": cannot convert \"" + std::string(bad) + "\" to bool");
  }
  CHECK_PGCM_ERROR(single(std::nullopt, "active")[0].get<bool>(0), errc::conversion_failed,
                   "column \"active\": NULL cannot be converted to bool (use std::optional)");
}

BOOST_AUTO_TEST_CASE(int16) {
  BOOST_TEST(convert<std::int16_t>("0") == 0);
  BOOST_TEST(convert<std::int16_t>("-0") == 0);
  BOOST_TEST(convert<std::int16_t>("32767") == 32767);
  BOOST_TEST(convert<std::int16_t>("-32768") == -32768);
  BOOST_TEST(convert<std::int16_t>("00042") == 42);
  BOOST_TEST((convert<std::optional<std::int16_t>>(std::nullopt) == std::nullopt));
  BOOST_TEST((convert<std::optional<std::int16_t>>("-5") == std::optional<std::int16_t>{-5}));
  CHECK_PGCM_ERROR(convert<std::int16_t>("32768"), errc::conversion_failed,
                   "column \"v\": cannot convert \"32768\" to int16 (out of range)");
  CHECK_PGCM_ERROR(convert<std::int16_t>("-32769"), errc::conversion_failed,
                   "column \"v\": cannot convert \"-32769\" to int16 (out of range)");
  CHECK_PGCM_ERROR(convert<std::int16_t>(std::nullopt), errc::conversion_failed,
                   "column \"v\": NULL cannot be converted to int16 (use std::optional)");
}

BOOST_AUTO_TEST_CASE(int32) {
  BOOST_TEST(convert<std::int32_t>("2147483647") == 2147483647);
  BOOST_TEST(convert<std::int32_t>("-2147483648") == std::numeric_limits<std::int32_t>::min());
  BOOST_TEST(convert<std::int32_t>("-0") == 0);
  BOOST_TEST((convert<std::optional<std::int32_t>>("7") == std::optional<std::int32_t>{7}));
  BOOST_TEST((convert<std::optional<std::int32_t>>(std::nullopt) == std::nullopt));
  auto n = single(std::nullopt, "n");
  CHECK_PGCM_ERROR(n[0].get<std::int32_t>("n"), errc::conversion_failed,
                   "column \"n\": NULL cannot be converted to int32 (use std::optional)");
  CHECK_PGCM_ERROR(convert<std::int32_t>("2147483648"), errc::conversion_failed,
                   "column \"v\": cannot convert \"2147483648\" to int32 (out of range)");
  CHECK_PGCM_ERROR(convert<std::int32_t>("99999999999999999999999999"), errc::conversion_failed,
                   "column \"v\": cannot convert \"99999999999999999999999999\" to int32 (out of "
                   "range)");
  // Strict: the whole text, digits with an optional '-', nothing else.
  for (const char* bad : {"", " 1", "1 ", " ", "+1", "1.0", "1e3", "0x10", "abc", "12abc", "--1",
                          "-", "1,000", "\t1", "1\n", "99999999999x"}) {
    CHECK_PGCM_ERROR(convert<std::int32_t>(std::string_view{bad}), errc::conversion_failed,
                     "column \"v\": cannot convert \"" + std::string(bad) + "\" to int32");
  }
}

BOOST_AUTO_TEST_CASE(int64) {
  BOOST_TEST(convert<std::int64_t>("9223372036854775807") ==
             std::numeric_limits<std::int64_t>::max());
  BOOST_TEST(convert<std::int64_t>("-9223372036854775808") ==
             std::numeric_limits<std::int64_t>::min());
  BOOST_TEST(convert<std::int64_t>("-0") == 0);
  BOOST_TEST((convert<std::optional<std::int64_t>>(std::nullopt) == std::nullopt));
  BOOST_TEST((convert<std::optional<std::int64_t>>("-1") == std::optional<std::int64_t>{-1}));
  BOOST_TEST(convert<long long>("123") == 123LL); // distinct type from int64_t on LP64
  CHECK_PGCM_ERROR(convert<std::int64_t>("9223372036854775808"), errc::conversion_failed,
                   "column \"v\": cannot convert \"9223372036854775808\" to int64 (out of range)");
  CHECK_PGCM_ERROR(convert<std::int64_t>("-9223372036854775809"), errc::conversion_failed,
                   "column \"v\": cannot convert \"-9223372036854775809\" to int64 (out of "
                   "range)");
  CHECK_PGCM_ERROR(convert<std::int64_t>(" 5"), errc::conversion_failed,
                   "column \"v\": cannot convert \" 5\" to int64");
  CHECK_PGCM_ERROR(convert<std::int64_t>(std::nullopt), errc::conversion_failed,
                   "column \"v\": NULL cannot be converted to int64 (use std::optional)");
}

BOOST_AUTO_TEST_CASE(unsigned_and_small_integers) {
  BOOST_TEST(convert<std::uint32_t>("4294967295") == 4294967295u);
  BOOST_TEST(convert<std::uint64_t>("18446744073709551615") ==
             std::numeric_limits<std::uint64_t>::max());
  BOOST_TEST(convert<std::int8_t>("-128") == -128);
  BOOST_TEST(convert<std::uint8_t>("255") == 255);
  CHECK_PGCM_ERROR(convert<std::uint32_t>("-1"), errc::conversion_failed,
                   "column \"v\": cannot convert \"-1\" to uint32");
  CHECK_PGCM_ERROR(convert<std::uint8_t>("256"), errc::conversion_failed,
                   "column \"v\": cannot convert \"256\" to uint8 (out of range)");
}

BOOST_AUTO_TEST_CASE(doubles) {
  BOOST_TEST(convert<double>("1.5") == 1.5);
  BOOST_TEST(convert<double>("-2") == -2.0);
  BOOST_TEST(convert<double>("0.1") == 0.1);
  BOOST_TEST(convert<double>("1e300") == 1e300);
  BOOST_TEST(convert<double>("1E-5") == 1e-5);
  BOOST_TEST(convert<double>("1.7976931348623157e+308") == std::numeric_limits<double>::max());
  BOOST_TEST(convert<double>("4.9406564584124654e-324") ==
             std::numeric_limits<double>::denorm_min());
  BOOST_TEST(convert<double>(".5") == 0.5);
  BOOST_TEST(convert<double>("5.") == 5.0);
  BOOST_TEST(convert<double>("42") == 42.0);
  const double neg_zero = convert<double>("-0");
  BOOST_TEST(neg_zero == 0.0);
  BOOST_TEST(std::signbit(neg_zero));
  BOOST_TEST(std::isnan(convert<double>("NaN")));
  BOOST_TEST(convert<double>("Infinity") == std::numeric_limits<double>::infinity());
  BOOST_TEST(convert<double>("-Infinity") == -std::numeric_limits<double>::infinity());
  BOOST_TEST(convert<double>("inf") == std::numeric_limits<double>::infinity());
  BOOST_TEST(std::isnan(convert<std::optional<double>>("NaN").value()));
  BOOST_TEST((convert<std::optional<double>>(std::nullopt) == std::nullopt));
  BOOST_TEST((convert<std::optional<double>>("2.25") == std::optional<double>{2.25}));
  BOOST_TEST(convert<float>("0.1") == 0.1f);
  BOOST_TEST(convert<float>("Infinity") == std::numeric_limits<float>::infinity());

  CHECK_PGCM_ERROR(convert<double>("1e400"), errc::conversion_failed,
                   "column \"v\": cannot convert \"1e400\" to double (out of range)");
  CHECK_PGCM_ERROR(convert<float>("1e39"), errc::conversion_failed,
                   "column \"v\": cannot convert \"1e39\" to float (out of range)");
  for (const char* bad :
       {"", " 1.5", "1.5 ", "+1.5", "1.5x", "abc", "0x1p3", "1,5", "Infinityx", "--1", "e5", "."}) {
    CHECK_PGCM_ERROR(convert<double>(std::string_view{bad}), errc::conversion_failed,
                     "column \"v\": cannot convert \"" + std::string(bad) + "\" to double");
  }
  CHECK_PGCM_ERROR(convert<double>(std::nullopt), errc::conversion_failed,
                   "column \"v\": NULL cannot be converted to double (use std::optional)");
}

BOOST_AUTO_TEST_CASE(value_traits_directly) {
  BOOST_TEST(pgcm::value_traits<int>::from_text("12") == 12);
  BOOST_TEST(pgcm::value_traits<bool>::from_text("t"));
  BOOST_TEST((pgcm::value_traits<std::optional<int>>::from_null() == std::nullopt));
  // Without a row there is no column to name.
  CHECK_PGCM_ERROR(pgcm::value_traits<int>::from_text("x"), errc::conversion_failed,
                   "cannot convert \"x\" to int32");
  CHECK_PGCM_ERROR(pgcm::throw_conversion_error("abc", "thing", "too thingy"),
                   errc::conversion_failed, "cannot convert \"abc\" to thing (too thingy)");
}

BOOST_AUTO_TEST_CASE(long_values_are_shortened_in_messages) {
  const std::string long_text(100, '7');
  CHECK_PGCM_ERROR(convert<int>(std::string_view{long_text}), errc::conversion_failed,
                   "column \"v\": cannot convert \"" + std::string(64, '7') +
                       "...\" to int32 (out of range)");
  // Not cut inside a UTF-8 sequence: 63 ASCII bytes, then a 2-byte character.
  const std::string utf8 = std::string(63, 'a') + "\xc3\xa9" + std::string(10, 'b');
  CHECK_PGCM_ERROR(convert<bool>(std::string_view{utf8}), errc::conversion_failed,
                   "column \"v\": cannot convert \"" + std::string(63, 'a') + "...\" to bool");
}

// -- user customization ----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(user_value_traits) {
  result_set rs({"c", "p", "ver", "s"});
  rs.add_row({"green", "(3,-4)", "v2", "x"});
  rs.add_row({"blue", std::nullopt, "2", std::nullopt});
  rs.add_row({std::nullopt, "(1,x)", std::nullopt, "x"});
  BOOST_TEST((rs[0].get<app::color>("c") == app::color::green));
  BOOST_TEST((rs[0].get<app::point>("p") == app::point{3, -4}));
  BOOST_TEST(rs[0].get<app::version>("ver").major == 2);
  BOOST_TEST((rs[1].get<app::point>("p") == app::point{})); // the traits' from_null
  BOOST_TEST((rs[2].get<std::optional<app::color>>("c") == std::nullopt));
  BOOST_TEST((rs[0].get<std::optional<app::color>>(0) == app::color::green));

  CHECK_PGCM_ERROR(rs[1].get<app::color>("c"), errc::conversion_failed,
                   "column \"c\": cannot convert \"blue\" to color");
  CHECK_PGCM_ERROR(rs[2].get<app::color>("c"), errc::conversion_failed,
                   "column \"c\": NULL cannot be converted to color (use std::optional)");
  // Nested: the inner int conversion's message, prefixed with the column.
  CHECK_PGCM_ERROR(rs[2].get<app::point>("p"), errc::conversion_failed,
                   "column \"p\": cannot convert \"x\" to int32");
  // No `name`: the demangled C++ type name.
  CHECK_PGCM_ERROR(rs[2].get<app::version>("ver"), errc::conversion_failed,
                   "column \"ver\": NULL cannot be converted to app::version (use std::optional)");
  // A plain std::exception becomes conversion_failed naming column, value and type.
  CHECK_PGCM_ERROR(rs[1].get<app::version>("ver"), errc::conversion_failed,
                   "column \"ver\": cannot convert \"2\" to app::version: versions start with 'v'");
  // A pgcm::error of another kind passes unchanged.
  CHECK_PGCM_ERROR(rs[0].get<app::strict_thing>("s"), errc::invalid_argument,
                   "strict thing says no");
}

BOOST_AUTO_TEST_CASE(map_rows_with_user_from_row_found_by_adl) {
  const auto rs = users();
  const std::vector<app::user> us = pgcm::map_rows<app::user>(rs);
  BOOST_TEST_REQUIRE(us.size() == 3u);
  BOOST_TEST(us[0].id == 1);
  BOOST_TEST(us[0].name == "ann");
  BOOST_TEST(us[0].email.value() == "ann@example.org");
  BOOST_TEST(us[0].active);
  BOOST_TEST(us[1].id == 2);
  BOOST_TEST(!us[1].email.has_value());
  BOOST_TEST(!us[1].active);
  BOOST_TEST(us[2].name == "");
  BOOST_TEST(us[2].email.value() == "");
  BOOST_TEST(us[2].active);

  BOOST_TEST(pgcm::map_rows<app::user>(result_set({"id", "name", "email", "active"})).empty());

  auto bad = users();
  bad.add_row({"4", "dan", std::nullopt, "maybe"});
  CHECK_PGCM_ERROR(pgcm::map_rows<app::user>(bad), errc::conversion_failed,
                   "column \"active\": cannot convert \"maybe\" to bool");
  result_set only_id({"id"}, {20});
  only_id.add_row({"1"});
  CHECK_PGCM_ERROR(pgcm::map_rows<app::user>(only_id), errc::column_not_found,
                   "column \"name\" not found; available columns: \"id\"");
}

BOOST_AUTO_TEST_CASE(tuple_from_row) {
  const auto rs = users();
  using tuple = std::tuple<std::int64_t, std::string, std::optional<std::string>, bool>;
  const auto ts = pgcm::map_rows<tuple>(rs);
  BOOST_TEST_REQUIRE(ts.size() == 3u);
  BOOST_TEST((ts[0] == tuple{1, "ann", std::string("ann@example.org"), true}));
  BOOST_TEST((ts[1] == tuple{2, "bob", std::nullopt, false}));
  BOOST_TEST((ts[2] == tuple{3, "", std::string(""), true}));

  tuple t;
  from_row(rs[1], t); // ADL via pgcm::row
  BOOST_TEST(std::get<1>(t) == "bob");

  // Other element types on the same columns.
  std::tuple<std::string, std::string_view, std::optional<std::int32_t>, std::string> u;
  pgcm::from_row(rs[1], u);
  BOOST_TEST(std::get<0>(u) == "2");
  BOOST_TEST(std::get<1>(u) == "bob");
  BOOST_TEST(!std::get<2>(u).has_value());
  BOOST_TEST(std::get<3>(u) == "f");

  std::tuple<int, std::string> too_short;
  CHECK_PGCM_ERROR(pgcm::from_row(rs[0], too_short), errc::conversion_failed,
                   "cannot map a row of 4 columns to a tuple of 2 elements");
  std::tuple<int, int, int, int, int> too_long;
  CHECK_PGCM_ERROR(pgcm::from_row(rs[0], too_long), errc::conversion_failed,
                   "cannot map a row of 4 columns to a tuple of 5 elements");
  std::tuple<int, std::string, int, bool> wrong_type;
  CHECK_PGCM_ERROR(pgcm::from_row(rs[0], wrong_type), errc::conversion_failed,
                   "column \"email\": cannot convert \"ann@example.org\" to int32");
  std::tuple<int, std::string, std::string, bool> null_in;
  CHECK_PGCM_ERROR(pgcm::from_row(rs[1], null_in), errc::conversion_failed,
                   "column \"email\": NULL cannot be converted to std::string (use std::optional)");

  result_set one({"n"});
  one.add_row({"5"});
  BOOST_TEST(std::get<0>(pgcm::map_rows<std::tuple<int>>(one).at(0)) == 5);
}

// -- from a PGresult -------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(to_result_set_copies_everything) {
  auto res = make_pg_result({{"id", 20}, {"name", 25}, {"email", 25}, {"active", 16}},
                            {{"1", "ann", "ann@example.org", "t"},
                             {"2", "bob", std::nullopt, "f"},
                             {"3", "", "", "true"}});
  BOOST_TEST_REQUIRE(PQntuples(res.get()) == 3);
  const result_set rs = pgcm::detail::to_result_set(res.get());
  BOOST_TEST(rs.raw().is_consistent());
  BOOST_TEST((rs.columns() == std::vector<std::string>{"id", "name", "email", "active"}));
  BOOST_TEST(rs.type_oid(0) == 20u);
  BOOST_TEST(rs.type_oid(3) == 16u);
  BOOST_TEST(rs.size() == 3u);
  BOOST_TEST(rs[1].is_null("email"));
  BOOST_TEST(!rs[2].is_null("email")); // empty string stays non-NULL
  BOOST_TEST(rs[2].text("email") == "");
  BOOST_TEST(rs[0].get<std::string>("email") == "ann@example.org");
  // A PGresult made by hand has no command tag.
  BOOST_TEST(rs.affected_rows() == -1);
  BOOST_TEST(rs.command() == "");

  // Identical to the hand-built equivalent (apart from tag and count, unknown here).
  auto expected = users();
  expected.set_affected_rows(-1);
  expected.set_command("");
  BOOST_TEST((rs == expected));

  // Independent of the PGresult.
  res.reset();
  BOOST_TEST(rs[0].text("name") == "ann");
  BOOST_TEST(pgcm::map_rows<app::user>(rs).at(2).active);
}

BOOST_AUTO_TEST_CASE(to_result_set_edge_cases) {
  // Columns but no rows.
  auto empty = make_pg_result({{"a", 23}}, {});
  const auto e = pgcm::detail::to_result_set(empty.get());
  BOOST_TEST(e.empty());
  BOOST_TEST(e.column_count() == 1u);
  BOOST_TEST(e.columns()[0] == "a");

  // No columns, no rows (e.g. the result of a command).
  pg_result_ptr cmd{PQmakeEmptyPGresult(nullptr, PGRES_COMMAND_OK)};
  const auto c = pgcm::detail::to_result_set(cmd.get());
  BOOST_TEST(c.empty());
  BOOST_TEST(c.column_count() == 0u);
  BOOST_TEST((c == result_set{}));

  // All NULL, binary-safe lengths, odd names.
  auto odd = make_pg_result({{"?column?", 0}, {"Quoted \"Name\"", 1043}},
                            {{std::nullopt, std::nullopt}, {"x", "y\xc3\xa9"}});
  const auto o = pgcm::detail::to_result_set(odd.get());
  BOOST_TEST(o.size() == 2u);
  BOOST_TEST(o[0].is_null(0));
  BOOST_TEST(o[0].is_null(1));
  BOOST_TEST(o[1].text("Quoted \"Name\"") == "y\xc3\xa9");
  BOOST_TEST(o[1].get<std::string>("?column?") == "x");
  BOOST_TEST(o.type_oid(1) == 1043u);
  BOOST_TEST(o.raw().values == "xy\xc3\xa9");

  // Many rows: every cell arrives in place.
  std::vector<std::vector<std::optional<std::string>>> rows;
  for (int i = 0; i < 1000; ++i)
    rows.push_back({std::to_string(i), i % 7 == 0 ? std::nullopt
                                                  : std::optional<std::string>{std::string(
                                                        static_cast<std::size_t>(i % 13), 'z')}});
  auto big = make_pg_result({{"i", 23}, {"z", 25}}, rows);
  const auto b = pgcm::detail::to_result_set(big.get());
  BOOST_TEST_REQUIRE(b.size() == 1000u);
  bool all_ok = true;
  for (row r : b) {
    const int i = r.get<int>(0);
    all_ok = all_ok && i == static_cast<int>(r.index());
    auto z = r.get<std::optional<std::string>>(1);
    if (i % 7 == 0)
      all_ok = all_ok && !z.has_value();
    else
      all_ok = all_ok && z == std::string(static_cast<std::size_t>(i % 13), 'z');
  }
  BOOST_TEST(all_ok);

  CHECK_PGCM_ERROR(pgcm::detail::to_result_set(nullptr), errc::invalid_argument,
                   "to_result_set: null PGresult");
}
