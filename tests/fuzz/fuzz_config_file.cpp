// libFuzzer target: the config-file parser and the password/validation pass
// behind it. Any input must end in a config (or config_error), never a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text{reinterpret_cast<const char*>(data), size};
  try {
    auto cfg = pgcm::parse_config(text, "/nonexistent/fuzz.conf");
    pgcm::env_lookup env = [](const std::string& name) -> std::optional<std::string> {
      if (name == "PG_PASSWORD") return std::string{"pw"};
      return std::nullopt;
    };
    (void)pgcm::resolve_nodes(cfg, env);
  } catch (const pgcm::config_error&) {
  }
  (void)pgcm::parse_duration(text);
  (void)pgcm::valid_node_id(text);
  return 0;
}
