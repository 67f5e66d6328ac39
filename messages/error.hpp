#pragma once

// Errors as values between actors: a caf::error of category "pgcm" whose code
// is a pgcm::errc and whose context is (message, sqlstate).

#include <string>

#include <caf/error.hpp>
#include <caf/fwd.hpp>

#include "pgcm/error.hpp"

namespace pgcm {

/// The category atom of pgcm's errors.
caf::atom_value error_category();

/// Makes a pgcm error; `sqlstate` empty when the server sent none.
caf::error make_error(errc code, std::string message, std::string sqlstate = {});

/// Converts any caf::error (pgcm's or CAF's own, e.g. a request timeout) into
/// pgcm's error_info. CAF errors map to the closest errc; `context` (e.g.
/// "node primary") prefixes messages of CAF errors, which name nothing.
error_info to_error_info(const caf::error& err, const std::string& context = {});

/// The reverse of to_error_info.
caf::error to_caf_error(const error_info& info);

/// Renders a pgcm error for actor_system::render.
std::string render_error(std::uint8_t code, caf::atom_value category, const caf::message& ctx);

} // namespace pgcm
