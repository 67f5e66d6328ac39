#pragma once

// Error messages that name their node: "node <id>: <what>[: <detail>]".
//
// Idempotent: a text that already carries a prefix (e.g. a worker's stored
// connect error "node a: connection failed: timeout" wrapped again as a
// connection failure of node a) gets it once, never twice.

#include <string>
#include <string_view>

#include "pgcm/messages/error.hpp"

namespace pgcm::detail {

/// `text` prefixed with "<context>: ", unless it already starts with it.
inline std::string with_context(std::string_view context, std::string_view text) {
  std::string out;
  if (text.size() > context.size() + 1 && text.substr(0, context.size()) == context &&
      text.substr(context.size(), 2) == ": ")
    return std::string{text};
  out.reserve(context.size() + 2 + text.size());
  out.append(context).append(": ").append(text);
  return out;
}

/// "node <id>: <text>", the prefix at most once.
inline std::string node_message(std::string_view node_id, std::string_view text) {
  std::string prefix = "node ";
  prefix.append(node_id);
  return with_context(prefix, text);
}

/// `text` without a leading "node <id>: " (for storing a message that will
/// be prefixed again when shown).
inline std::string strip_node_prefix(std::string_view node_id, std::string_view text) {
  std::string prefix = "node ";
  prefix.append(node_id).append(": ");
  if (text.size() > prefix.size() && text.substr(0, prefix.size()) == prefix)
    text.remove_prefix(prefix.size());
  return std::string{text};
}

/// "node <id>: <what>: <detail>", where `detail` may already carry the node
/// prefix and/or `what` (then neither is repeated).
inline std::string node_message(std::string_view node_id, std::string_view what,
                                std::string_view detail) {
  std::string prefix = "node ";
  prefix.append(node_id);
  // Strip a node prefix from the detail first, then add `what` once.
  std::string_view rest = detail;
  if (rest.size() > prefix.size() + 1 && rest.substr(0, prefix.size()) == prefix &&
      rest.substr(prefix.size(), 2) == ": ")
    rest.remove_prefix(prefix.size() + 2);
  return with_context(prefix, with_context(what, rest));
}

/// A pgcm error whose message names the node.
inline caf::error node_error(errc code, std::string_view node_id, std::string_view text) {
  return make_error(code, node_message(node_id, text));
}

/// A pgcm error "node <id>: <what>: <detail>" (see node_message).
inline caf::error node_error(errc code, std::string_view node_id, std::string_view what,
                             std::string_view detail, std::string sqlstate = {}) {
  return make_error(code, node_message(node_id, what, detail), std::move(sqlstate));
}

} // namespace pgcm::detail
