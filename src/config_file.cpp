#include "config_file.hpp"

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

namespace pgcm {

// -- config_error -------------------------------------------------------------

namespace {

std::string render(const std::string& file, std::size_t line, const std::string& field,
                   const std::string& message) {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  if (!field.empty()) out += field + ": ";
  out += message;
  return out;
}

} // namespace

config_error::config_error(std::string file, std::size_t line, std::string field,
                           std::string message)
    : std::runtime_error(render(file, line, field, message)), file_(std::move(file)), line_(line),
      field_(std::move(field)), message_(std::move(message)) {}

bool valid_node_id(std::string_view id) {
  if (id.empty() || id.size() > 63) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

namespace {

/// Durations above this are refused (about 11.5 days): keeps every later
/// conversion (to nanoseconds, plus margins) far from overflow.
constexpr std::int64_t max_duration_ms = 1'000'000'000;

/// A parsed right-hand side.
struct value {
  enum class kind { string, integer, boolean } type = kind::string;
  std::string str;
  std::int64_t num = 0;
  bool flag = false;
};

const char* kind_name(value::kind k) {
  switch (k) {
  case value::kind::string:
    return "a string";
  case value::kind::integer:
    return "an integer";
  case value::kind::boolean:
    return "a boolean";
  }
  return "?";
}

bool is_bare_key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

/// Shows a character in a message (printable ASCII as is, others as hex).
std::string show_char(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) return std::string{"'"} + c + "'";
  static const char* hex = "0123456789abcdef";
  return std::string{"byte 0x"} + hex[u >> 4] + hex[u & 15];
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

std::string anchor_path(const std::string& config_path, const std::string& p) {
  if (p.empty() || p.front() == '/') return p;
  auto slash = config_path.rfind('/');
  if (slash == std::string::npos) return p;
  return config_path.substr(0, slash + 1) + p;
}

/// See parse_duration().
std::optional<std::int64_t> parse_duration_ms(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::int64_t total = 0;
  std::size_t i = 0;
  while (i < s.size()) {
    std::int64_t n = 0;
    auto start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (n > max_duration_ms) return std::nullopt;
      n = n * 10 + (s[i] - '0');
      ++i;
    }
    if (i == start) return std::nullopt;
    auto ustart = i;
    while (i < s.size() && s[i] >= 'a' && s[i] <= 'z')
      ++i;
    auto unit = s.substr(ustart, i - ustart);
    std::int64_t factor;
    if (unit == "ms")
      factor = 1;
    else if (unit == "s")
      factor = 1000;
    else if (unit == "m" || unit == "min")
      factor = 60'000;
    else if (unit == "h")
      factor = 3'600'000;
    else if (unit.empty() && start == 0 && i == s.size())
      factor = 1; // "500": milliseconds, as for integers
    else
      return std::nullopt;
    if (n > max_duration_ms) // (factor > 1 only makes it larger)
      return std::nullopt;
    total += n * factor;
    if (total > max_duration_ms) return std::nullopt;
  }
  return total;
}

// -- field tables -------------------------------------------------------------

enum class field_type { string, path, port, count, flag, duration, password, env_name };

struct field_spec {
  const char* name;
  field_type type;
  std::int64_t min; // for count and duration (ms)
};

const field_spec manager_fields[] = {
    {"health_check_interval", field_type::duration, 1},
    {"unhealthy_threshold", field_type::count, 1},
    {"shutdown_timeout", field_type::duration, 0},
    {"query_timeout", field_type::duration, 1},
    {"health_check_timeout", field_type::duration, 0},
    {"connect_timeout", field_type::duration, 1},
    {"reconnect_backoff_initial", field_type::duration, 1},
    {"reconnect_backoff_max", field_type::duration, 1},
};

const field_spec node_fields[] = {
    {"host", field_type::string, 0},
    {"port", field_type::port, 1},
    {"database", field_type::string, 0},
    {"user", field_type::string, 0},
    {"password", field_type::password, 0},
    {"password_env", field_type::env_name, 0},
    {"passfile", field_type::path, 0},
    {"application_name", field_type::string, 0},
    {"ssl.enabled", field_type::flag, 0},
    {"ssl.reject_unauthorized", field_type::flag, 0},
    {"ssl.ca", field_type::path, 0},
    {"pool.min", field_type::count, 0},
    {"pool.max", field_type::count, 1},
    {"pool.pipeline_depth", field_type::count, 1},
    {"pool.max_waiting", field_type::count, 0},
    {"pool.statement_cache", field_type::count, 0},
};

template <std::size_t N>
const field_spec* find_field(const field_spec (&table)[N], std::string_view name) {
  for (auto& f : table)
    if (name == f.name) return &f;
  return nullptr;
}

template <std::size_t N>
std::string field_list(const field_spec (&table)[N], std::string_view prefix) {
  std::string out;
  for (auto& f : table) {
    std::string_view n = f.name;
    if (n.substr(0, prefix.size()) != prefix) continue;
    if (!out.empty()) out += ", ";
    out += n.substr(prefix.size());
  }
  return out;
}

// -- parser -------------------------------------------------------------------

class parser {
public:
  parser(std::string_view text, const std::string& path) : text_(text) { out_.path = path; }

  config_file run() {
    if (text_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3; // UTF-8 byte order mark
    while (pos_ < text_.size() || line_ == 0) {
      ++line_;
      auto end = text_.find('\n', pos_);
      if (end == std::string_view::npos) end = text_.size();
      line_text_ = text_.substr(pos_, end - pos_);
      if (!line_text_.empty() && line_text_.back() == '\r') line_text_.remove_suffix(1);
      col_ = 0;
      parse_line();
      pos_ = end + 1;
      if (end >= text_.size()) break;
    }
    finish();
    return std::move(out_);
  }

private:
  // -- errors

  [[noreturn]] void fail(const std::string& field, const std::string& msg) {
    throw config_error{out_.path, line_, field, msg};
  }

  [[noreturn]] void fail_at(std::size_t line, const std::string& field, const std::string& msg) {
    throw config_error{out_.path, line, field, msg};
  }

  // -- characters of the current line

  bool at_end() const { return col_ >= line_text_.size(); }
  char peek() const { return at_end() ? '\0' : line_text_[col_]; }

  void skip_ws() {
    while (!at_end() && (line_text_[col_] == ' ' || line_text_[col_] == '\t'))
      ++col_;
  }

  /// After a header or a value: only white space and a comment may follow.
  void expect_line_end(const std::string& field, const char* after = "the value") {
    skip_ws();
    if (at_end() || peek() == '#') return;
    fail(field, "unexpected " + show_char(peek()) + " after " + after + " (comments start with #)");
  }

  // -- lines

  void parse_line() {
    skip_ws();
    if (at_end() || peek() == '#') return;
    if (peek() == '[')
      parse_header();
    else
      parse_assignment();
  }

  /// key ( '.' key )*, each bare or quoted.
  std::vector<std::string> parse_key_path(const std::string& context) {
    std::vector<std::string> path;
    for (;;) {
      skip_ws();
      if (peek() == '"' || peek() == '\'') {
        auto v = parse_string(context);
        if (v.empty()) fail(context, "empty quoted key");
        path.push_back(std::move(v));
      } else {
        auto start = col_;
        while (!at_end() && is_bare_key_char(peek()))
          ++col_;
        if (col_ == start) {
          if (at_end()) fail(context, "missing key");
          fail(context,
               "unexpected " + show_char(peek()) + " in key (bare keys are A-Z a-z 0-9 _ -)");
        }
        path.emplace_back(line_text_.substr(start, col_ - start));
      }
      skip_ws();
      if (peek() != '.') return path;
      ++col_;
    }
  }

  void parse_header() {
    ++col_; // '['
    if (peek() == '[') fail("", "arrays of tables ([[...]]) are not supported");
    auto path = parse_key_path("section");
    skip_ws();
    if (peek() != ']')
      fail("section",
           at_end() ? "missing ']'" : "unexpected " + show_char(peek()) + " in section header");
    ++col_;
    std::string name = join(path);
    expect_line_end(name, "the section header");
    if (path[0] == "manager") {
      if (path.size() != 1)
        fail(name, "unknown section [" + name + "] (the manager section has no subsections)");
      if (manager_line_ != 0)
        fail(name, "section [manager] defined twice (first on line " +
                       std::to_string(manager_line_) + ")");
      manager_line_ = line_;
      section_ = section::manager;
      return;
    }
    if (path[0] != "node")
      fail(name, "unknown section [" + name + "] (expected [manager] or [node.ID])");
    if (path.size() == 1) fail(name, "a node section needs an id: [node.ID]");
    if (!valid_node_id(path[1]))
      fail(name, "invalid node id (1 to 63 characters of A-Z a-z 0-9 _ . -)");
    if (path.size() > 3 || (path.size() == 3 && path[2] != "ssl" && path[2] != "pool"))
      fail(name, "unknown section [" + name + "] (node subsections are ssl and pool)");
    auto& node = node_for(path[1]);
    std::string key = path.size() == 3 ? path[2] : std::string{};
    auto [it, fresh] = node_headers_.emplace(path[1] + "." + key, line_);
    if (!fresh)
      fail(name, "section [" + name + "] defined twice (first on line " +
                     std::to_string(it->second) + ")");
    section_ = section::node;
    current_node_ = static_cast<std::size_t>(&node - out_.nodes.data());
    prefix_ = key.empty() ? key : key + ".";
  }

  config_node& node_for(const std::string& id) {
    for (auto& n : out_.nodes)
      if (n.id == id) return n;
    config_node n;
    n.id = id;
    n.line = line_;
    out_.nodes.push_back(std::move(n));
    return out_.nodes.back();
  }

  void parse_assignment() {
    auto path = parse_key_path("key");
    std::string key = join(path);
    skip_ws();
    if (peek() != '=')
      fail(key, at_end() ? "missing '=' after the key"
                         : "expected '=' after the key, got " + show_char(peek()));
    ++col_;
    skip_ws();
    if (section_ == section::none)
      fail(key, "key outside a section (start with [manager] or [node.ID])");
    if (section_ == section::manager)
      assign_manager(key);
    else
      assign_node(out_.nodes[current_node_], prefix_ + key);
  }

  void assign_manager(const std::string& key) {
    auto* spec = find_field(manager_fields, key);
    if (spec == nullptr)
      fail(key, "unknown field in [manager] (known: " + field_list(manager_fields, "") + ")");
    auto v = parse_value(key, false);
    expect_line_end(key);
    auto [it, fresh] = out_.manager_lines.emplace(key, line_);
    if (!fresh) fail(key, "set twice (first on line " + std::to_string(it->second) + ")");
    auto& o = out_.manager;
    if (key == "unhealthy_threshold") {
      o.unhealthy_threshold = static_cast<int>(as_count(v, *spec));
      return;
    }
    milliseconds d{as_duration(v, *spec)};
    if (key == "health_check_interval")
      o.health_check_interval = d;
    else if (key == "shutdown_timeout")
      o.shutdown_timeout = d;
    else if (key == "query_timeout")
      o.query_timeout = d;
    else if (key == "health_check_timeout")
      o.health_check_timeout = d;
    else if (key == "connect_timeout")
      o.connect_timeout = d;
    else if (key == "reconnect_backoff_initial")
      o.reconnect_backoff_initial = d;
    else
      o.reconnect_backoff_max = d;
  }

  void assign_node(config_node& node, const std::string& key) {
    auto* spec = find_field(node_fields, key);
    if (spec == nullptr && (key == "ssl" || key == "pool"))
      fail(key, "is a group of fields: write " + key + ".FIELD = ... or use a [node." + node.id +
                    "." + key + "] section (inline tables are not supported)");
    if (spec == nullptr) {
      auto dot = key.find('.');
      if (dot != std::string::npos &&
          (key.compare(0, dot, "ssl") == 0 || key.compare(0, dot, "pool") == 0)) {
        auto group = key.substr(0, dot + 1);
        fail(key, "unknown field (known " + group.substr(0, dot) +
                      " fields: " + field_list(node_fields, group) + ")");
      }
      fail(key,
           "unknown field in [node." + node.id + "] (known: " + field_list(node_fields, "") + ")");
    }
    auto v = parse_value(key, spec->type == field_type::password);
    expect_line_end(key);
    auto [it, fresh] = node.lines.emplace(key, line_);
    if (!fresh) fail(key, "set twice (first on line " + std::to_string(it->second) + ")");
    auto& c = node.config;
    switch (spec->type) {
    case field_type::string: {
      auto s = as_string(v, key);
      if (s.empty() && key != "application_name") fail(key, "must not be empty");
      if (key == "host")
        c.host = std::move(s);
      else if (key == "database")
        c.database = std::move(s);
      else if (key == "user")
        c.user = std::move(s);
      else
        c.application_name = std::move(s);
      break;
    }
    case field_type::port:
      if (v.type != value::kind::integer || v.num < 1 || v.num > 65535)
        fail(key, "must be an integer from 1 to 65535");
      c.port = static_cast<std::uint16_t>(v.num);
      break;
    case field_type::count: {
      auto n = static_cast<int>(as_count(v, *spec));
      if (key == "pool.min")
        c.pool.min = n;
      else if (key == "pool.max")
        c.pool.max = n;
      else if (key == "pool.pipeline_depth")
        c.pool.pipeline_depth = n;
      else if (key == "pool.max_waiting")
        c.pool.max_waiting = n;
      else
        c.pool.statement_cache = n;
      break;
    }
    case field_type::flag:
      if (v.type != value::kind::boolean)
        fail(key, "must be true or false, got " + std::string{kind_name(v.type)});
      if (key == "ssl.enabled")
        c.ssl.enabled = v.flag;
      else
        c.ssl.reject_unauthorized = v.flag;
      break;
    case field_type::path: {
      auto s = as_string(v, key);
      if (s.empty()) fail(key, "must not be empty");
      s = anchor_path(out_.path, s);
      if (key == "ssl.ca")
        c.ssl.ca = std::move(s);
      else
        set_password(node, key, password_source::kind::passfile, std::move(s));
      break;
    }
    case field_type::password: {
      if (v.type != value::kind::string) fail(key, "must be a string");
      if (v.str.empty()) fail(key, "must not be empty");
      set_password(node, key, password_source::kind::inline_value, std::move(v.str));
      break;
    }
    case field_type::env_name: {
      auto s = as_string(v, key);
      bool ok = !s.empty() && !(s[0] >= '0' && s[0] <= '9');
      for (char ch : s)
        ok = ok && ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                    (ch >= '0' && ch <= '9') || ch == '_');
      if (!ok)
        fail(
            key,
            "must name an environment variable (letters, digits and _, not starting with a digit)");
      set_password(node, key, password_source::kind::env, std::move(s));
      break;
    }
    case field_type::duration:
      break; // no node field is a duration
    }
  }

  void set_password(config_node& node, const std::string& key, password_source::kind k,
                    std::string v) {
    if (node.password.type != password_source::kind::none) {
      for (auto* other : {"password", "password_env", "passfile"}) {
        auto it = node.lines.find(other);
        if (other != key && it != node.lines.end())
          fail(key, std::string{"only one of password, password_env and passfile may be set ("} +
                        other + " is set on line " + std::to_string(it->second) + ")");
      }
    }
    node.password.type = k;
    node.password.value = std::move(v);
  }

  // -- value conversions

  std::string as_string(value& v, const std::string& key) {
    if (v.type != value::kind::string)
      fail(key, "must be a string (in quotes), got " + std::string{kind_name(v.type)});
    return std::move(v.str);
  }

  std::int64_t as_count(const value& v, const field_spec& spec) {
    if (v.type != value::kind::integer)
      fail(spec.name, "must be an integer, got " + std::string{kind_name(v.type)});
    if (v.num < spec.min || v.num > std::numeric_limits<int>::max())
      fail(spec.name, "must be an integer from " + std::to_string(spec.min) + " to " +
                          std::to_string(std::numeric_limits<int>::max()) + " (got " +
                          std::to_string(v.num) + ")");
    return v.num;
  }

  /// An integer (milliseconds) or a string of <integer><unit> parts, units
  /// ms, s, m, h: "250ms", "5s", "1m30s".
  std::int64_t as_duration(const value& v, const field_spec& spec) {
    std::int64_t ms = 0;
    if (v.type == value::kind::integer) {
      ms = v.num;
    } else if (v.type == value::kind::string) {
      auto parsed = parse_duration_ms(v.str);
      if (!parsed)
        fail(
            spec.name,
            "invalid duration \"" + v.str +
                "\" (use an integer of milliseconds or e.g. \"250ms\", \"5s\", \"2m\", \"1m30s\")");
      ms = *parsed;
    } else {
      fail(spec.name, "must be a duration (e.g. \"5s\" or milliseconds), got a boolean");
    }
    if (ms < spec.min)
      fail(spec.name, spec.min == 0 ? "must not be negative" : "must be greater than 0");
    if (ms > max_duration_ms)
      fail(spec.name, "must be at most " + std::to_string(max_duration_ms) + " ms");
    return ms;
  }

  // -- values

  value parse_value(const std::string& key, bool secret) {
    value v;
    char c = peek();
    if (at_end() || c == '#') fail(key, "missing value after '='");
    if (c == '"' || c == '\'') {
      v.type = value::kind::string;
      v.str = parse_string(key);
      return v;
    }
    if (c == '{')
      fail(key, "inline tables are not supported; write " + key + ".FIELD = ... or use a section");
    if (c == '[') fail(key, "arrays are not supported");
    auto start = col_;
    while (!at_end() && peek() != ' ' && peek() != '\t' && peek() != '#')
      ++col_;
    auto tok = line_text_.substr(start, col_ - start);
    if (tok == "true" || tok == "false") {
      v.type = value::kind::boolean;
      v.flag = tok == "true";
      return v;
    }
    if (auto n = parse_integer(tok)) {
      v.type = value::kind::integer;
      v.num = *n;
      return v;
    }
    if (secret) fail(key, "invalid value (strings need quotes)");
    std::string shown{tok.substr(0, 40)};
    for (auto& ch : shown)
      if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) >= 0x7f) ch = '?';
    fail(key, "invalid value '" + shown + "' (strings need quotes; booleans are true/false)");
  }

  /// Decimal integer, optional sign, '_' allowed between digits.
  static std::optional<std::int64_t> parse_integer(std::string_view tok) {
    std::string digits;
    std::size_t i = 0;
    bool neg = false;
    if (i < tok.size() && (tok[i] == '+' || tok[i] == '-')) {
      neg = tok[i] == '-';
      ++i;
    }
    if (i >= tok.size()) return std::nullopt;
    for (; i < tok.size(); ++i) {
      char c = tok[i];
      if (c >= '0' && c <= '9') {
        digits.push_back(c);
      } else if (c == '_' && !digits.empty() && i + 1 < tok.size() && tok[i + 1] >= '0' &&
                 tok[i + 1] <= '9') {
        continue;
      } else {
        return std::nullopt;
      }
    }
    if (digits.empty()) return std::nullopt;
    if (neg) digits.insert(digits.begin(), '-');
    std::int64_t n = 0;
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (ec != std::errc{} || ptr != digits.data() + digits.size())
      return std::nullopt; // out of range
    return n;
  }

  /// A basic ("...", with escapes) or literal ('...') string on one line.
  std::string parse_string(const std::string& key) {
    char quote = peek();
    if (line_text_.substr(col_, 3) == std::string(3, quote))
      fail(key, "multi-line strings are not supported");
    ++col_;
    std::string out;
    for (;;) {
      if (at_end())
        fail(key, "unterminated string (missing closing " + std::string(1, quote) + ")");
      char c = line_text_[col_++];
      auto u = static_cast<unsigned char>(c);
      if (c == quote) break;
      if ((u < 0x20 && c != '\t') || u == 0x7f)
        fail(key, "control character (" + show_char(c) + ") in string");
      if (c != '\\' || quote == '\'') {
        out.push_back(c);
        continue;
      }
      if (at_end()) fail(key, "unterminated string (missing closing \")");
      char e = line_text_[col_++];
      switch (e) {
      case 'b':
        out.push_back('\b');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case '"':
        out.push_back('"');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case 'u':
      case 'U': {
        std::size_t len = e == 'u' ? 4 : 8;
        if (col_ + len > line_text_.size())
          fail(key, std::string{"\\"} + e + " needs " + std::to_string(len) + " hex digits");
        std::uint32_t cp = 0;
        for (std::size_t k = 0; k < len; ++k) {
          char h = line_text_[col_ + k];
          std::uint32_t d;
          if (h >= '0' && h <= '9')
            d = static_cast<std::uint32_t>(h - '0');
          else if (h >= 'a' && h <= 'f')
            d = static_cast<std::uint32_t>(h - 'a' + 10);
          else if (h >= 'A' && h <= 'F')
            d = static_cast<std::uint32_t>(h - 'A' + 10);
          else
            fail(key, std::string{"\\"} + e + " needs " + std::to_string(len) + " hex digits");
          cp = cp * 16 + d;
        }
        col_ += len;
        if (cp == 0) fail(key, "strings must not contain NUL characters");
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
          fail(key, "\\" + std::string(1, e) + " escape is not a Unicode scalar value");
        append_utf8(out, cp);
        break;
      }
      default:
        fail(key, "unknown escape \\" +
                      (static_cast<unsigned char>(e) >= 0x20 && static_cast<unsigned char>(e) < 0x7f
                           ? std::string(1, e)
                           : show_char(e)));
      }
    }
    return out;
  }

  static std::string join(const std::vector<std::string>& path) {
    std::string out;
    for (auto& p : path) {
      if (!out.empty()) out += '.';
      out += p;
    }
    return out;
  }

  // -- end of input

  void finish() {
    for (auto& n : out_.nodes) {
      for (auto* field : {"host", "database", "user"})
        if (n.lines.count(field) == 0)
          fail_at(n.line, field, "missing in [node." + n.id + "] (required)");
    }
  }

  enum class section { none, manager, node };

  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t line_ = 0;
  std::string_view line_text_;
  std::size_t col_ = 0;
  section section_ = section::none;
  std::size_t current_node_ = 0;
  std::string prefix_;
  std::size_t manager_line_ = 0;
  std::map<std::string, std::size_t> node_headers_;
  config_file out_;
};

/// The field a validate() message is about: the word after the first ": "
/// ("invalid config for node \"ID\": FIELD ...", "invalid manager option: FIELD ...").
std::string field_of(const std::string& message) {
  auto p = message.find(": ");
  if (p == std::string::npos) return {};
  auto rest = message.substr(p + 2);
  return rest.substr(0, rest.find(' '));
}

std::size_t line_of(const std::map<std::string, std::size_t>& lines, const std::string& field,
                    std::size_t fallback) {
  auto it = lines.find(field);
  return it == lines.end() ? fallback : it->second;
}

} // namespace

std::optional<milliseconds> parse_duration(std::string_view text) {
  if (auto ms = parse_duration_ms(text)) return milliseconds{*ms};
  return std::nullopt;
}

config_file parse_config(std::string_view text, const std::string& path) {
  return parser{text, path}.run();
}

config_file read_config_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    throw config_error{path, 0, "", std::string{"cannot read the file: "} + std::strerror(errno)};
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) throw config_error{path, 0, "", "cannot read the file"};
  return parse_config(buf.str(), path);
}

std::vector<std::pair<std::string, node_config>> resolve_nodes(const config_file& cfg,
                                                               const env_lookup& env) {
  if (auto problem = validate(cfg.manager)) {
    auto field = field_of(problem->message);
    throw config_error{cfg.path, line_of(cfg.manager_lines, field, 0), field, problem->message};
  }
  std::vector<std::pair<std::string, node_config>> out;
  for (auto& n : cfg.nodes) {
    node_config c = n.config;
    try {
      c.password = resolve_password(n.password, c, env);
    } catch (const password_error& e) {
      std::string field =
          n.password.type == password_source::kind::env ? "password_env" : "passfile";
      throw config_error{cfg.path, line_of(n.lines, field, n.line), field, e.what()};
    }
    if (auto problem = validate(n.id, c)) {
      auto field = field_of(problem->message);
      throw config_error{cfg.path, line_of(n.lines, field, n.line), field, problem->message};
    }
    out.emplace_back(n.id, std::move(c));
  }
  return out;
}

} // namespace pgcm
