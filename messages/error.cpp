#include "pgcm/messages/error.hpp"

#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace pgcm {

caf::atom_value error_category() {
  return caf::atom("pgcm");
}

caf::error make_error(errc code, std::string message, std::string sqlstate) {
  return caf::error{static_cast<std::uint8_t>(code), error_category(),
                    caf::make_message(std::move(message), std::move(sqlstate))};
}

error_info to_error_info(const caf::error& err, const std::string& context) {
  error_info out;
  if (err.category() == error_category()) {
    out.code = static_cast<errc>(err.code());
    const auto& ctx = err.context();
    if (ctx.match_elements<std::string, std::string>()) {
      out.message = ctx.get_as<std::string>(0);
      const auto& state = ctx.get_as<std::string>(1);
      if (!state.empty()) out.sqlstate = state;
    } else {
      out.message = to_string(out.code);
    }
    return out;
  }
  std::string prefix = context.empty() ? std::string{} : context + ": ";
  if (err.category() == caf::atom("system")) {
    switch (static_cast<caf::sec>(err.code())) {
    case caf::sec::request_timeout:
      out.code = errc::query_timeout;
      out.message = prefix + "request timeout (no answer in time)";
      return out;
    case caf::sec::request_receiver_down:
      out.code = errc::shutting_down;
      out.message = prefix + "the actor handling the request is gone (shutting down)";
      return out;
    case caf::sec::remote_linking_failed:
    case caf::sec::no_route_to_receiving_node:
    case caf::sec::cannot_connect_to_node:
    case caf::sec::disconnect_during_handshake:
    case caf::sec::connection_timeout:
    case caf::sec::socket_disconnected:
      out.code = errc::remote_disconnected;
      out.message = prefix + "remote manager unreachable (" + caf::to_string(err) + ")";
      return out;
    case caf::sec::unexpected_message:
    case caf::sec::unexpected_response:
    case caf::sec::unexpected_actor_messaging_interface:
    case caf::sec::incompatible_versions:
    case caf::sec::incompatible_application_ids:
    case caf::sec::malformed_basp_message:
      out.code = errc::protocol_mismatch;
      out.message = prefix + "protocol mismatch (" + caf::to_string(err) + ")";
      return out;
    default:
      break;
    }
  }
  out.code = errc::internal;
  out.message = prefix + "unexpected error: " + caf::to_string(err);
  return out;
}

caf::error to_caf_error(const error_info& info) {
  return make_error(info.code, info.message, info.sqlstate.value_or(std::string{}));
}

std::string render_error(std::uint8_t code, caf::atom_value, const caf::message& ctx) {
  std::string out = to_string(static_cast<errc>(code));
  if (ctx.match_elements<std::string, std::string>()) {
    out += ": ";
    out += ctx.get_as<std::string>(0);
    const auto& state = ctx.get_as<std::string>(1);
    if (!state.empty()) out += " (SQLSTATE " + state + ")";
  }
  return out;
}

} // namespace pgcm
