#pragma once

// Helpers shared by the parser unit tests (config file, conninfo): a printable
// password_source::kind, a fake environment, and random edits of an input for
// the never-crashes tests.

#include <map>
#include <optional>
#include <ostream>
#include <random>
#include <string>

#include "password_source.hpp"

namespace pgcm {

/// Lets Boost.Test print password_source::kind values.
inline std::ostream& operator<<(std::ostream& os, password_source::kind k) {
  return os << static_cast<int>(k);
}

} // namespace pgcm

namespace pgcm::test {

/// An environment holding exactly `vars`.
inline env_lookup fake_env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

/// Applies 1 to `max_edits` random edits to `text`, each one of: erase 1 to
/// `max_erase` bytes, insert a byte of `alphabet`, insert an arbitrary byte,
/// or (if `overwrite`) replace a byte with one of `alphabet`.
inline void random_edits(std::string& text, std::mt19937& rng, const std::string& alphabet,
                         unsigned max_edits, unsigned max_erase, bool overwrite) {
  int edits = 1 + static_cast<int>(rng() % max_edits);
  for (int k = 0; k < edits; ++k) {
    auto pos = text.empty() ? 0 : rng() % text.size();
    switch (rng() % (overwrite ? 4u : 3u)) {
    case 0:
      if (!text.empty()) text.erase(pos, 1 + rng() % max_erase);
      break;
    case 1:
      text.insert(pos, 1, alphabet[rng() % alphabet.size()]);
      break;
    case 2:
      text.insert(pos, 1, static_cast<char>(rng() % 256));
      break;
    default:
      if (!text.empty()) text[pos] = alphabet[rng() % alphabet.size()];
    }
  }
}

} // namespace pgcm::test
