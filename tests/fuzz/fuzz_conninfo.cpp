// libFuzzer target: `--node ID=CONNINFO` parsing (libpq keyword strings and
// postgresql:// URIs).
#include <cstddef>
#include <cstdint>
#include <string>

#include "conninfo.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text{reinterpret_cast<const char*>(data), size};
  pgcm::env_lookup env = [](const std::string&) -> std::optional<std::string> {
    return std::nullopt;
  };
  try {
    (void)pgcm::parse_conninfo(text, env);
  } catch (const pgcm::conninfo_error&) {
  }
  return 0;
}
