#include "pgcm/result_set.hpp"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <memory>
#include <new>

#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#define PGCM_HAS_CXXABI 1
#endif

namespace pgcm {

namespace detail {

namespace {

/// At most this many bytes of a value appear in an error message.
constexpr std::size_t max_quoted_value = 64;

/// Appends `"<text>"`, shortened to `max_quoted_value` bytes (on a UTF-8 boundary) + "...".
void append_quoted(std::string& out, std::string_view text) {
  out += '"';
  if (text.size() <= max_quoted_value) {
    out += text;
  } else {
    std::size_t n = max_quoted_value;
    while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80)
      --n; // don't cut a UTF-8 sequence: text[n] would be a continuation byte
    out.append(text.data(), n);
    out += "...";
  }
  out += '"';
}

std::string column_prefix(std::string_view column) {
  std::string msg = "column ";
  append_quoted(msg, column);
  msg += ": ";
  return msg;
}

[[noreturn]] void throw_null_impl(std::string_view column, std::string_view type) {
  auto msg = column_prefix(column);
  msg += "NULL cannot be converted to ";
  msg += type;
  msg += " (use std::optional)";
  throw error(errc::conversion_failed, std::move(msg));
}

} // namespace

void throw_null(std::string_view column, std::string_view type) {
  throw_null_impl(column, type);
}

void throw_null(std::string_view column, const std::type_info& type) {
  throw_null_impl(column, type_name(type));
}

void rethrow_with_column(std::string_view column, std::string_view text,
                         const std::type_info& type) {
  try {
    throw;
  } catch (const error& e) {
    if (e.code() != errc::conversion_failed) throw;
    throw error(errc::conversion_failed, column_prefix(column) + e.what(), e.sqlstate());
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    auto msg = column_prefix(column);
    msg += "cannot convert ";
    append_quoted(msg, text);
    msg += " to ";
    msg += type_name(type);
    msg += ": ";
    msg += e.what();
    throw error(errc::conversion_failed, std::move(msg));
  }
  // Anything else propagates unchanged from `throw;`.
}

void throw_column_index(long long index, std::size_t columns) {
  throw error(errc::column_not_found, "column index " + std::to_string(index) +
                                          " out of range (the row has " + std::to_string(columns) +
                                          (columns == 1 ? " column)" : " columns)"));
}

void throw_column_index(unsigned long long index, std::size_t columns) {
  throw error(errc::column_not_found, "column index " + std::to_string(index) +
                                          " out of range (the row has " + std::to_string(columns) +
                                          (columns == 1 ? " column)" : " columns)"));
}

void throw_row_index(std::size_t index, std::size_t rows) {
  throw error(errc::invalid_argument, "row index " + std::to_string(index) +
                                          " out of range (the result has " + std::to_string(rows) +
                                          (rows == 1 ? " row)" : " rows)"));
}

void throw_too_large() {
  throw error(errc::invalid_argument, "result too large: a result_set holds at most 4 GiB of "
                                      "cell text");
}

void throw_tuple_size(std::size_t columns, std::size_t elements) {
  throw error(errc::conversion_failed, "cannot map a row of " + std::to_string(columns) +
                                           (columns == 1 ? " column" : " columns") +
                                           " to a tuple of " + std::to_string(elements) +
                                           (elements == 1 ? " element" : " elements"));
}

std::string type_name(const std::type_info& type) {
#ifdef PGCM_HAS_CXXABI
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name{
      abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), std::free};
  if (status == 0 && name != nullptr) return name.get();
#endif
  return type.name();
}

} // namespace detail

// -- errors --------------------------------------------------------------------------------

void throw_conversion_error(std::string_view text, std::string_view type, const char* reason) {
  std::string msg = "cannot convert ";
  detail::append_quoted(msg, text);
  msg += " to ";
  msg += type;
  if (reason != nullptr) {
    msg += " (";
    msg += reason;
    msg += ')';
  }
  throw error(errc::conversion_failed, std::move(msg));
}

// -- result_set::storage ---------------------------------------------------------------------

bool result_set::storage::is_consistent() const noexcept {
  const std::size_t ncols = names.size();
  if (type_oids.size() != ncols || ends.size() != nulls.size()) return false;
  if (values.size() > std::numeric_limits<std::uint32_t>::max()) return false;
  if (ncols == 0) return ends.empty() && values.empty();
  if (rows > std::numeric_limits<std::size_t>::max() / ncols || rows * ncols != ends.size())
    return false;
  std::uint32_t prev = 0;
  for (std::size_t i = 0; i < ends.size(); ++i) {
    if (ends[i] < prev || nulls[i] > 1 || (nulls[i] == 1 && ends[i] != prev)) return false;
    prev = ends[i];
  }
  return prev == values.size();
}

// -- result_set ------------------------------------------------------------------------------

result_set::result_set(std::vector<std::string> names, std::vector<std::uint32_t> type_oids) {
  if (type_oids.empty()) {
    type_oids.assign(names.size(), 0);
  } else if (type_oids.size() != names.size()) {
    throw error(errc::invalid_argument, "result_set: " + std::to_string(names.size()) +
                                            " column names but " +
                                            std::to_string(type_oids.size()) + " type OIDs");
  }
  store_.names = std::move(names);
  store_.type_oids = std::move(type_oids);
}

result_set::result_set(storage s) {
  if (!s.is_consistent()) throw error(errc::invalid_argument, "result_set: inconsistent storage");
  store_ = std::move(s);
}

void result_set::reserve(std::size_t rows, std::size_t text_bytes) {
  const std::size_t ncols = column_count();
  if (ncols > 0) {
    if (rows > std::numeric_limits<std::size_t>::max() / ncols) detail::throw_too_large();
    store_.ends.reserve(rows * ncols);
    store_.nulls.reserve(rows * ncols);
  }
  store_.values.reserve(text_bytes);
}

void result_set::add_row(std::initializer_list<std::optional<std::string_view>> cells) {
  const std::size_t ncols = column_count();
  if (cells.size() != ncols)
    throw error(errc::invalid_argument, "result_set::add_row: " + std::to_string(cells.size()) +
                                            " cells for " + std::to_string(ncols) +
                                            (ncols == 1 ? " column" : " columns"));
  for (const auto& cell : cells) {
    if (cell)
      append_cell(cell->data(), cell->size());
    else
      append_null();
  }
  end_row();
}

void result_set::end_row() {
  const std::size_t ncols = column_count();
  const std::size_t done = static_cast<std::size_t>(store_.rows) * ncols;
  const std::size_t have = store_.ends.size();
  if (have != done + ncols) {
    // Discard the partial row so the result stays consistent.
    store_.values.resize(done == 0 ? 0 : store_.ends[done - 1]);
    store_.ends.resize(done);
    store_.nulls.resize(done);
    throw error(errc::invalid_argument, "result_set::end_row: " + std::to_string(have - done) +
                                            " cells for " + std::to_string(ncols) +
                                            (ncols == 1 ? " column" : " columns"));
  }
  ++store_.rows;
}

const std::string& result_set::column_name(std::size_t i) const {
  if (i >= column_count())
    detail::throw_column_index(static_cast<unsigned long long>(i), column_count());
  return store_.names[i];
}

std::optional<std::size_t> result_set::find_column(std::string_view name) const noexcept {
  const auto& names = store_.names;
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return i;
  return std::nullopt;
}

std::size_t result_set::column_index(std::string_view name) const {
  if (auto i = find_column(name)) return *i;
  std::string msg = "column \"";
  msg += name;
  msg += "\" not found";
  if (store_.names.empty()) {
    msg += "; the result has no columns";
  } else {
    msg += "; available columns: ";
    bool first = true;
    for (const auto& n : store_.names) {
      if (!first) msg += ", ";
      first = false;
      msg += '"';
      msg += n;
      msg += '"';
    }
  }
  throw error(errc::column_not_found, std::move(msg));
}

std::uint32_t result_set::type_oid(std::size_t i) const {
  if (i >= column_count())
    detail::throw_column_index(static_cast<unsigned long long>(i), column_count());
  return store_.type_oids[i];
}

row result_set::at(std::size_t i) const {
  if (i >= size()) detail::throw_row_index(i, size());
  return row{*this, i};
}

} // namespace pgcm
