#pragma once

// A small streaming JSON writer for --json output: always valid JSON
// (strings escaped, invalid UTF-8 replaced by U+FFFD), no pretty-printing
// beyond one object per line where the caller asks for it.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgcm::cli {

class json_writer {
public:
  json_writer& begin_object();
  json_writer& end_object();
  json_writer& begin_array();
  json_writer& end_array();
  /// The key of the next value (inside an object).
  json_writer& key(std::string_view k);
  json_writer& value(std::string_view s);
  json_writer& value(const char* s) { return value(std::string_view{s}); }
  json_writer& value(const std::string& s) { return value(std::string_view{s}); }
  json_writer& value(std::int64_t n);
  json_writer& value(bool b);
  json_writer& null();
  /// A string, or null for nullopt.
  json_writer& value(const std::optional<std::string>& s);
  /// Inserts already valid JSON text (e.g. a number in PostgreSQL's syntax).
  json_writer& raw(std::string_view json);

  const std::string& str() const { return out_; }

private:
  void separate();
  std::string out_;
  std::vector<bool> first_; // per open container: no element written yet
  bool after_key_ = false;
};

/// Appends `s` as a JSON string literal.
void append_json_string(std::string& out, std::string_view s);

} // namespace pgcm::cli
