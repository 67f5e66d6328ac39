#include "pq_result.hpp"

#include <charconv>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace pgcm::detail {

namespace {

/// PQcmdTuples text → count; -1 if empty or unparsable.
std::int64_t parse_affected_rows(const char* text) {
  if (text == nullptr || *text == '\0') return -1;
  const char* last = text + std::strlen(text);
  std::int64_t n = -1;
  auto [ptr, ec] = std::from_chars(text, last, n);
  if (ec != std::errc{} || ptr != last || n < 0) return -1;
  return n;
}

} // namespace

result_set to_result_set(const PGresult* res) {
  if (res == nullptr) throw error(errc::invalid_argument, "to_result_set: null PGresult");
  const int ncols = PQnfields(res);
  const int nrows = PQntuples(res);

  std::vector<std::string> names;
  std::vector<std::uint32_t> oids;
  names.reserve(static_cast<std::size_t>(ncols));
  oids.reserve(static_cast<std::size_t>(ncols));
  for (int c = 0; c < ncols; ++c) {
    const char* name = PQfname(res, c);
    names.emplace_back(name != nullptr ? name : "");
    oids.push_back(static_cast<std::uint32_t>(PQftype(res, c)));
  }
  result_set rs{std::move(names), std::move(oids)};

  // Sum the lengths first (cheap: they sit next to the value pointers libpq keeps per cell)
  // so the text is copied exactly once, into a buffer of the right size.
  std::size_t total = 0;
  for (int r = 0; r < nrows; ++r)
    for (int c = 0; c < ncols; ++c)
      total += static_cast<std::size_t>(PQgetlength(res, r, c));
  if (total > std::numeric_limits<std::uint32_t>::max()) throw_too_large();
  rs.reserve(static_cast<std::size_t>(nrows), total);

  for (int r = 0; r < nrows; ++r) {
    for (int c = 0; c < ncols; ++c) {
      if (PQgetisnull(res, r, c))
        rs.append_null();
      else
        rs.append_cell(PQgetvalue(res, r, c), static_cast<std::size_t>(PQgetlength(res, r, c)));
    }
    rs.end_row();
  }

  // These two take a non-const PGresult* for historical reasons; they do not modify it.
  auto* mut = const_cast<PGresult*>(res);
  rs.set_affected_rows(parse_affected_rows(PQcmdTuples(mut)));
  if (const char* tag = PQcmdStatus(mut)) rs.set_command(tag);
  return rs;
}

} // namespace pgcm::detail
