#pragma once

#include "pgcm/error.hpp"
#include "pgcm/routing.hpp"

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace pgcm {

class result_set;
class row;

/// Throws `error(errc::conversion_failed, "cannot convert \"<text>\" to <type>")`, or with
/// `reason`, `"... to <type> (<reason>)"`. For `value_traits` specializations: `row::get`
/// prefixes the message with `column "<name>": `. Long values are shortened in the message.
[[noreturn]] void throw_conversion_error(std::string_view text, std::string_view type,
                                         const char* reason = nullptr);

// -- implementation details ------------------------------------------------------------------

namespace detail {

template <class T> inline constexpr bool always_false_v = false;

/// `char`, `wchar_t`, `char8_t`, `char16_t`, `char32_t`: neither converted nor used as indices.
template <class T>
inline constexpr bool is_text_char_v = std::is_same_v<T, char> || std::is_same_v<T, wchar_t> ||
                                       std::is_same_v<T, char16_t> || std::is_same_v<T, char32_t>
#ifdef __cpp_char8_t
                                       || std::is_same_v<T, char8_t>
#endif
    ;

/// Integer types proper: integral, but not `bool` and not a character type.
template <class T>
inline constexpr bool is_integer_v =
    std::is_integral_v<T> && !std::is_same_v<T, bool> && !is_text_char_v<T>;

/// Constraint for the column-index overloads of `row`.
template <class I> using enable_if_index_t = std::enable_if_t<is_integer_v<I>, int>;

/// "int16", "uint32", ...
template <class T> constexpr std::string_view integer_name() {
  constexpr bool s = std::is_signed_v<T>;
  switch (sizeof(T)) {
  case 1:
    return s ? "int8" : "uint8";
  case 2:
    return s ? "int16" : "uint16";
  case 4:
    return s ? "int32" : "uint32";
  default:
    return s ? "int64" : "uint64";
  }
}

// Out-of-line error builders (result_set.cpp); they keep the inline paths small.

/// Throws `error(conversion_failed,
/// "column \"<column>\": NULL cannot be converted to <type> (use std::optional)")`.
[[noreturn]] void throw_null(std::string_view column, std::string_view type);
/// As above, naming the type by its (demangled) `type_info`.
[[noreturn]] void throw_null(std::string_view column, const std::type_info& type);
/// Call only inside a `catch` block: rethrows the exception being handled with the column
/// named. `error(conversion_failed)` gets the prefix `column "<column>": `; other
/// `std::exception`s (not `std::bad_alloc`) become `error(conversion_failed)` naming the column,
/// the value and the type; other `pgcm::error`s and non-standard exceptions pass unchanged.
[[noreturn]] void rethrow_with_column(std::string_view column, std::string_view text,
                                      const std::type_info& type);
/// Throws `error(column_not_found)` for a column index out of range.
[[noreturn]] void throw_column_index(long long index, std::size_t columns);
/// \copydoc throw_column_index(long long, std::size_t)
[[noreturn]] void throw_column_index(unsigned long long index, std::size_t columns);
/// Throws `error(invalid_argument)` for a row index out of range.
[[noreturn]] void throw_row_index(std::size_t index, std::size_t rows);
/// Throws `error(invalid_argument)`: the cell text would exceed 4 GiB.
[[noreturn]] void throw_too_large();
/// Throws `error(conversion_failed)`: row width and tuple size differ.
[[noreturn]] void throw_tuple_size(std::size_t columns, std::size_t elements);
/// Readable name of a type (demangled where the compiler supports it).
std::string type_name(const std::type_info& type);

/// Parses an entire string with std::from_chars; throws via `throw_conversion_error` otherwise.
template <class T, class... Fmt>
T parse_number(std::string_view text, std::string_view type, Fmt... fmt) {
  T value{};
  const char* first = text.data();
  const char* last = first + text.size();
  auto [ptr, ec] = std::from_chars(first, last, value, fmt...);
  if (ptr == last) {
    if (ec == std::errc{}) return value;
    if (ec == std::errc::result_out_of_range) throw_conversion_error(text, type, "out of range");
  }
  throw_conversion_error(text, type);
}

} // namespace detail

// -- conversions -----------------------------------------------------------------------------

/// Customization point: how a cell's text (PostgreSQL text output format) becomes a `T`.
///
/// A specialization provides `static T from_text(std::string_view text)`, which throws
/// `pgcm::error(errc::conversion_failed, ...)` if `text` is not a valid `T` (use
/// `throw_conversion_error` or any exception derived from `std::exception`: `row::get` adds
/// the column's name to the message). Optionally it provides
/// - `static T from_null()`: the value of a NULL cell (without it, NULL throws
///   `conversion_failed`);
/// - `static constexpr std::string_view name`: the type's name in error messages.
///
/// Example, in the global namespace or `namespace pgcm`:
/// \code
/// template <> struct pgcm::value_traits<my::color> {
///   static my::color from_text(std::string_view text) { return my::parse_color(text); }
/// };
/// \endcode
///
/// Provided: `std::string`, `std::string_view` (a view into the result_set: valid while it
/// lives), `bool`, all integer types (`int16_t`, `int32_t`, `int64_t`, unsigned ones, ...;
/// not `char`), `float`, `double`, and `std::optional<T>` of each (NULL → `std::nullopt`).
/// The second parameter is for `std::enable_if_t` partial specializations.
template <class T, class = void> struct value_traits {
  static_assert(detail::always_false_v<T>,
                "pgcm::value_traits<T> is not specialized for this type: specialize it "
                "(see pgcm/result_set.hpp) or request a supported type");
  static T from_text(std::string_view text);
};

/// The text itself.
template <> struct value_traits<std::string> {
  static constexpr std::string_view name = "std::string";
  static std::string from_text(std::string_view text) { return std::string{text}; }
};

/// A view of the text, valid while the result_set lives.
template <> struct value_traits<std::string_view> {
  static constexpr std::string_view name = "std::string_view";
  static std::string_view from_text(std::string_view text) noexcept { return text; }
};

/// PostgreSQL's boolean output "t" / "f"; also "true" / "false". Nothing else.
template <> struct value_traits<bool> {
  static constexpr std::string_view name = "bool";
  static bool from_text(std::string_view text) {
    if (text == "t" || text == "true") return true;
    if (text == "f" || text == "false") return false;
    throw_conversion_error(text, name);
  }
};

/// Decimal integers exactly as std::from_chars reads them: an optional '-' and digits, the
/// whole text (no whitespace, no '+'), within the range of `T`.
template <class T> struct value_traits<T, std::enable_if_t<detail::is_integer_v<T>>> {
  static constexpr std::string_view name = detail::integer_name<T>();
  static T from_text(std::string_view text) { return detail::parse_number<T>(text, name); }
};

/// Decimal or exponent notation as std::from_chars reads it (the whole text, no whitespace,
/// no '+'), plus "NaN", "Infinity", "-Infinity" (case-insensitive, as are "inf" / "nan").
/// Values beyond the range of `double` are out of range.
template <> struct value_traits<double> {
  static constexpr std::string_view name = "double";
  static double from_text(std::string_view text) {
    return detail::parse_number<double>(text, name, std::chars_format::general);
  }
};

/// As `double`, in the range of `float`.
template <> struct value_traits<float> {
  static constexpr std::string_view name = "float";
  static float from_text(std::string_view text) {
    return detail::parse_number<float>(text, name, std::chars_format::general);
  }
};

/// NULL → `std::nullopt`; otherwise `value_traits<T>::from_text`.
template <class T> struct value_traits<std::optional<T>> {
  static std::optional<T> from_text(std::string_view text) {
    return value_traits<T>::from_text(text);
  }
  static std::optional<T> from_null() noexcept { return std::nullopt; }
};

namespace detail {

template <class T, class = void> struct has_from_null : std::false_type {};

template <class T>
struct has_from_null<T, std::void_t<decltype(value_traits<T>::from_null())>> : std::true_type {};

template <class T, class = void> struct has_type_name : std::false_type {};

template <class T>
struct has_type_name<T, std::void_t<decltype(std::string_view{value_traits<T>::name})>>
    : std::true_type {};

} // namespace detail

// -- row -------------------------------------------------------------------------------------

/// One row of a `result_set`: a cheap view (pointer + row number). Valid while the result_set
/// it came from lives and is not modified, moved from or assigned to.
///
/// Columns are addressed by name (`std::string_view`, `const char*`, `std::string`) or by
/// zero-based index (any integer type; `r.get<int>(0)` picks the index). An unknown name or
/// an index out of range throws `error(errc::column_not_found)` naming it. If several columns
/// share a name, the name means the first of them.
class row {
public:
  /// A row of nothing; only assignable.
  row() noexcept = default;

  /// Row `index` of `rs`; `index < rs.size()` is the caller's responsibility.
  row(const result_set& rs, std::size_t index) noexcept : rs_(&rs), index_(index) {}

  /// The number of columns.
  std::size_t size() const noexcept;

  /// This row's position in its result_set.
  std::size_t index() const noexcept { return index_; }

  /// The result_set this row belongs to.
  const result_set& result() const noexcept { return *rs_; }

  /// The column names.
  const std::vector<std::string>& columns() const noexcept;

  /// True if the cell is NULL.
  bool is_null(std::string_view column) const;
  /// \copydoc is_null(std::string_view) const
  template <class I, detail::enable_if_index_t<I> = 0> bool is_null(I column) const {
    return null_at(check_index(column));
  }

  /// The cell's text (PostgreSQL text output); empty for NULL. A view into the result_set.
  std::string_view text(std::string_view column) const;
  /// \copydoc text(std::string_view) const
  template <class I, detail::enable_if_index_t<I> = 0> std::string_view text(I column) const {
    return text_at(check_index(column));
  }

  /// The cell converted by `value_traits<T>`. Throws `error(errc::conversion_failed)` naming
  /// the column and the value if the text is not a valid `T` or the cell is NULL and `T`
  /// cannot hold NULL (use `std::optional<T>`).
  template <class T> T get(std::string_view column) const;
  /// \copydoc get(std::string_view) const
  template <class T, class I, detail::enable_if_index_t<I> = 0> T get(I column) const {
    return get_at<T>(check_index(column));
  }

  // `nullptr` is neither a name nor an index.
  bool is_null(std::nullptr_t) const = delete;
  std::string_view text(std::nullptr_t) const = delete;
  template <class T> T get(std::nullptr_t) const = delete;

  /// The same row of the same result_set.
  friend bool operator==(const row& x, const row& y) noexcept {
    return x.rs_ == y.rs_ && x.index_ == y.index_;
  }
  friend bool operator!=(const row& x, const row& y) noexcept { return !(x == y); }

private:
  template <class I> std::size_t check_index(I column) const;

  bool null_at(std::size_t column) const noexcept;
  std::string_view text_at(std::size_t column) const noexcept;
  template <class T> T get_at(std::size_t column) const;

  const result_set* rs_ = nullptr;
  std::size_t index_ = 0;
};

// -- result_set ------------------------------------------------------------------------------

/// The rows of a query result, copied out of libpq's PGresult in text format: a regular value
/// type (copyable, movable, comparable) holding no libpq object.
///
/// Storage is a handful of flat arrays (see `storage`), so copying or serializing a result
/// costs a few allocations, not one per cell.
class result_set {
public:
  /// The flat representation. Invariants (`is_consistent()`):
  /// - `type_oids.size() == names.size()` (call that `ncols`);
  /// - `ends.size() == nulls.size() == rows * ncols`; cell (r, c) has index `r * ncols + c`;
  /// - the text of cell i is `values[ends[i-1] .. ends[i])` (`ends[-1]` being 0): `ends` is
  ///   non-decreasing and its last element (if any) is `values.size()`, else `values` is empty;
  /// - `nulls[i]` is 1 for NULL (its text then empty) and 0 otherwise;
  /// - `values.size()` fits in 32 bits (a result_set holds at most 4 GiB of cell text).
  /// `rows` is stored separately because a result may have rows but no columns.
  struct storage {
    std::vector<std::string> names;
    std::vector<std::uint32_t> type_oids;
    std::string values;
    std::vector<std::uint32_t> ends;
    std::vector<std::uint8_t> nulls;
    std::uint64_t rows = 0;
    std::int64_t affected_rows = -1;
    std::string command;
    /// The node that answered (not part of equality).
    std::string node_id;
    /// With route::want_lsn on the primary: a WAL position at or after the
    /// statement's commit; 0 = none (not part of equality).
    std::uint64_t commit_lsn = 0;

    /// True if the invariants above hold. Check this after filling a storage by other means
    /// than the result_set builder (e.g. deserialization): the accessors rely on them.
    bool is_consistent() const noexcept;

    friend bool operator==(const storage& x, const storage& y) {
      return x.rows == y.rows && x.affected_rows == y.affected_rows && x.names == y.names &&
             x.type_oids == y.type_oids && x.ends == y.ends && x.nulls == y.nulls &&
             x.values == y.values && x.command == y.command;
    }
    friend bool operator!=(const storage& x, const storage& y) { return !(x == y); }
  };

  class iterator;
  using const_iterator = iterator;
  using value_type = row;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;

  /// No columns, no rows, `affected_rows() == -1`, empty command.
  result_set() = default;

  /// No rows, the given columns. `type_oids` may be empty (all 0, "unknown"); otherwise its
  /// size must match `names` (else throws `error(errc::invalid_argument)`).
  explicit result_set(std::vector<std::string> names, std::vector<std::uint32_t> type_oids = {});

  /// Adopts `s`; throws `error(errc::invalid_argument)` unless `s.is_consistent()`.
  explicit result_set(storage s);

  // -- building --

  /// Makes room for `rows` rows and `text_bytes` bytes of cell text in total.
  void reserve(std::size_t rows, std::size_t text_bytes = 0);

  /// Appends a row; `std::nullopt` is NULL. Throws `error(errc::invalid_argument)` (leaving
  /// the result unchanged) unless there is one cell per column.
  void add_row(std::initializer_list<std::optional<std::string_view>> cells);

  /// Appends a non-NULL cell to the row being built (low-level, for converters: append one
  /// cell per column, then call `end_row()`). Throws `error(errc::invalid_argument)` if the
  /// cell text would exceed 4 GiB.
  void append_cell(const char* data, std::size_t size);
  /// \copydoc append_cell(const char*, std::size_t)
  void append_cell(std::string_view text) { append_cell(text.data(), text.size()); }
  /// Appends a NULL cell to the row being built.
  void append_null();
  /// Completes the row being built. Throws `error(errc::invalid_argument)` unless exactly
  /// `column_count()` cells were appended since the last row; the partial row is then
  /// discarded.
  void end_row();

  /// Sets `affected_rows()`.
  void set_affected_rows(std::int64_t n) noexcept { store_.affected_rows = n; }
  /// Sets `command()`.
  void set_command(std::string tag) noexcept { store_.command = std::move(tag); }
  /// Sets `node_id()`.
  void set_node_id(std::string id) noexcept { store_.node_id = std::move(id); }
  /// Sets `commit_lsn()`.
  void set_commit_lsn(lsn pos) noexcept { store_.commit_lsn = pos.value; }

  // -- access --

  /// The number of rows.
  std::size_t size() const noexcept { return static_cast<std::size_t>(store_.rows); }
  /// True if there are no rows.
  bool empty() const noexcept { return store_.rows == 0; }

  /// The column names, in order.
  const std::vector<std::string>& columns() const noexcept { return store_.names; }
  /// The number of columns.
  std::size_t column_count() const noexcept { return store_.names.size(); }
  /// The name of column `i`; throws `error(errc::column_not_found)` if out of range.
  const std::string& column_name(std::size_t i) const;
  /// The index of the first column called `name`, if any.
  std::optional<std::size_t> find_column(std::string_view name) const noexcept;
  /// The index of the first column called `name`. Throws `error(errc::column_not_found)`
  /// naming it and listing the available columns.
  std::size_t column_index(std::string_view name) const;
  /// The type OID of column `i` (0 if unknown); throws `error(errc::column_not_found)` if out
  /// of range.
  std::uint32_t type_oid(std::size_t i) const;

  /// Row `i`; unchecked (`i < size()` is the caller's responsibility).
  row operator[](std::size_t i) const noexcept { return row{*this, i}; }
  /// Row `i`; throws `error(errc::invalid_argument)` if `i >= size()`.
  row at(std::size_t i) const;
  /// The first row; unchecked.
  row front() const noexcept { return row{*this, 0}; }

  iterator begin() const noexcept;
  iterator end() const noexcept;
  iterator cbegin() const noexcept;
  iterator cend() const noexcept;

  /// The row count from the command tag (INSERT / UPDATE / DELETE / MERGE; libpq also
  /// reports it for SELECT, COPY, MOVE, FETCH, CREATE TABLE AS); -1 if the tag has none.
  std::int64_t affected_rows() const noexcept { return store_.affected_rows; }
  /// The command tag, e.g. "SELECT 1" or "INSERT 0 3"; empty if unknown.
  const std::string& command() const noexcept { return store_.command; }
  /// The node that answered (every query through a manager sets it).
  const std::string& node_id() const noexcept { return store_.node_id; }
  /// With route::want_lsn on the primary: a WAL position at or after this
  /// statement's commit (the read-your-writes token); otherwise nullopt.
  std::optional<lsn> commit_lsn() const noexcept {
    if (store_.commit_lsn == 0) return std::nullopt;
    return lsn{store_.commit_lsn};
  }

  /// The representation (for serializers). Whoever modifies it must keep it consistent.
  storage& raw() noexcept { return store_; }
  /// \copydoc raw()
  const storage& raw() const noexcept { return store_; }

  /// Same columns, types, cells, counts and command tag.
  friend bool operator==(const result_set& x, const result_set& y) { return x.store_ == y.store_; }
  friend bool operator!=(const result_set& x, const result_set& y) { return !(x == y); }

private:
  storage store_;
};

/// Iterates the rows of a result_set, yielding `row` views by value (a proxy reference, like
/// `std::vector<bool>::iterator`): `for (pgcm::row r : rs)` or `for (auto r : rs)`.
/// Random access; valid while the result_set lives and is not modified.
class result_set::iterator {
public:
  using iterator_category = std::random_access_iterator_tag;
  using value_type = row;
  using difference_type = std::ptrdiff_t;
  using reference = row;

  /// What `operator->` returns: holds the row.
  class pointer {
  public:
    explicit pointer(row r) noexcept : r_(r) {}
    const row* operator->() const noexcept { return &r_; }

  private:
    row r_;
  };

  iterator() noexcept = default;
  iterator(const result_set& rs, std::size_t index) noexcept : rs_(&rs), index_(index) {}

  row operator*() const noexcept { return row{*rs_, index_}; }
  pointer operator->() const noexcept { return pointer{**this}; }
  row operator[](difference_type n) const noexcept {
    return row{*rs_, static_cast<std::size_t>(static_cast<difference_type>(index_) + n)};
  }

  iterator& operator++() noexcept {
    ++index_;
    return *this;
  }
  iterator operator++(int) noexcept {
    auto tmp = *this;
    ++index_;
    return tmp;
  }
  iterator& operator--() noexcept {
    --index_;
    return *this;
  }
  iterator operator--(int) noexcept {
    auto tmp = *this;
    --index_;
    return tmp;
  }
  iterator& operator+=(difference_type n) noexcept {
    index_ = static_cast<std::size_t>(static_cast<difference_type>(index_) + n);
    return *this;
  }
  iterator& operator-=(difference_type n) noexcept { return *this += -n; }

  friend iterator operator+(iterator it, difference_type n) noexcept { return it += n; }
  friend iterator operator+(difference_type n, iterator it) noexcept { return it += n; }
  friend iterator operator-(iterator it, difference_type n) noexcept { return it -= n; }
  friend difference_type operator-(const iterator& x, const iterator& y) noexcept {
    return static_cast<difference_type>(x.index_) - static_cast<difference_type>(y.index_);
  }

  friend bool operator==(const iterator& x, const iterator& y) noexcept {
    return x.index_ == y.index_ && x.rs_ == y.rs_;
  }
  friend bool operator!=(const iterator& x, const iterator& y) noexcept { return !(x == y); }
  friend bool operator<(const iterator& x, const iterator& y) noexcept {
    return x.index_ < y.index_;
  }
  friend bool operator>(const iterator& x, const iterator& y) noexcept { return y < x; }
  friend bool operator<=(const iterator& x, const iterator& y) noexcept { return !(y < x); }
  friend bool operator>=(const iterator& x, const iterator& y) noexcept { return !(x < y); }

private:
  const result_set* rs_ = nullptr;
  std::size_t index_ = 0;
};

// -- inline definitions ----------------------------------------------------------------------

inline void result_set::append_cell(const char* data, std::size_t size) {
  constexpr std::size_t max = std::numeric_limits<std::uint32_t>::max();
  if (size > max || store_.values.size() + size > max) detail::throw_too_large();
  if (size > 0) store_.values.append(data, size);
  store_.ends.push_back(static_cast<std::uint32_t>(store_.values.size()));
  store_.nulls.push_back(0);
}

inline void result_set::append_null() {
  store_.ends.push_back(static_cast<std::uint32_t>(store_.values.size()));
  store_.nulls.push_back(1);
}

inline result_set::iterator result_set::begin() const noexcept {
  return iterator{*this, 0};
}

inline result_set::iterator result_set::end() const noexcept {
  return iterator{*this, size()};
}

inline result_set::iterator result_set::cbegin() const noexcept {
  return begin();
}

inline result_set::iterator result_set::cend() const noexcept {
  return end();
}

inline std::size_t row::size() const noexcept {
  return rs_->column_count();
}

inline const std::vector<std::string>& row::columns() const noexcept {
  return rs_->columns();
}

inline bool row::null_at(std::size_t column) const noexcept {
  const auto& s = rs_->raw();
  return s.nulls[index_ * s.names.size() + column] != 0;
}

inline std::string_view row::text_at(std::size_t column) const noexcept {
  const auto& s = rs_->raw();
  const std::size_t i = index_ * s.names.size() + column;
  const std::size_t first = i == 0 ? 0 : s.ends[i - 1];
  return std::string_view{s.values.data() + first, s.ends[i] - first};
}

inline bool row::is_null(std::string_view column) const {
  return null_at(rs_->column_index(column));
}

inline std::string_view row::text(std::string_view column) const {
  return text_at(rs_->column_index(column));
}

template <class I> std::size_t row::check_index(I column) const {
  const std::size_t n = size();
  if constexpr (std::is_signed_v<I>) {
    if (column < 0 || static_cast<std::make_unsigned_t<I>>(column) >= n)
      detail::throw_column_index(static_cast<long long>(column), n);
  } else {
    if (column >= n) detail::throw_column_index(static_cast<unsigned long long>(column), n);
  }
  return static_cast<std::size_t>(column);
}

template <class T> T row::get(std::string_view column) const {
  return get_at<T>(rs_->column_index(column));
}

template <class T> T row::get_at(std::size_t column) const {
  using traits = value_traits<T>;
  if (null_at(column)) {
    if constexpr (detail::has_from_null<T>::value) {
      return traits::from_null();
    } else if constexpr (detail::has_type_name<T>::value) {
      detail::throw_null(rs_->columns()[column], traits::name);
    } else {
      detail::throw_null(rs_->columns()[column], typeid(T));
    }
  }
  const std::string_view text = text_at(column);
  try {
    return traits::from_text(text);
  } catch (...) {
    detail::rethrow_with_column(rs_->columns()[column], text, typeid(T));
  }
}

// -- typed mapping ---------------------------------------------------------------------------

namespace detail {

template <class Tuple, std::size_t... Is>
void tuple_from_row(const row& r, Tuple& t, std::index_sequence<Is...>) {
  ((std::get<Is>(t) = r.get<std::tuple_element_t<Is, Tuple>>(Is)), ...);
}

} // namespace detail

/// Column i → element i, each converted by `value_traits`. Throws
/// `error(errc::conversion_failed)` unless the row has exactly `sizeof...(Ts)` columns.
template <class... Ts> void from_row(const row& r, std::tuple<Ts...>& t) {
  if (r.size() != sizeof...(Ts)) detail::throw_tuple_size(r.size(), sizeof...(Ts));
  detail::tuple_from_row(r, t, std::index_sequence_for<Ts...>{});
}

/// Converts every row to a `T`: value-initializes a `T` and calls `from_row(row, t)`, found by
/// argument-dependent lookup, so write it next to your type:
/// \code
/// namespace app {
/// struct user { std::int64_t id; std::string name; std::optional<std::string> email; };
/// inline void from_row(const pgcm::row& r, user& u) {
///   u.id = r.get<std::int64_t>("id");
///   u.name = r.get<std::string>("name");
///   u.email = r.get<std::optional<std::string>>("email");
/// }
/// } // namespace app
/// auto users = pgcm::map_rows<app::user>(rs);
/// \endcode
/// `std::tuple<Ts...>` works out of the box (by position). Exceptions from `from_row`
/// propagate.
template <class T> std::vector<T> map_rows(const result_set& rs) {
  std::vector<T> out;
  out.reserve(rs.size());
  for (row r : rs) {
    T value{};
    from_row(r, value);
    out.push_back(std::move(value));
  }
  return out;
}

} // namespace pgcm
