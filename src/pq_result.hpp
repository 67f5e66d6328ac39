#pragma once

#include "pgcm/result_set.hpp"

#include <libpq-fe.h>

namespace pgcm::detail {

/// Copies a libpq result (text format) into a `result_set`: column names (PQfname), type OIDs
/// (PQftype), every cell (PQgetvalue / PQgetlength / PQgetisnull), `affected_rows` from
/// PQcmdTuples (-1 if empty) and the command tag from PQcmdStatus. Any status is accepted
/// (a PGRES_COMMAND_OK result has no columns). Does not take ownership of `res`.
///
/// Throws `error(errc::invalid_argument)` if `res` is null or the cell text exceeds 4 GiB;
/// `std::bad_alloc` if memory runs out.
result_set to_result_set(const PGresult* res);

} // namespace pgcm::detail
