// libFuzzer target: text-to-type conversion of result cells (row::get<T>),
// and result_set storage consistency checks on arbitrary layouts.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pgcm/result_set.hpp"

namespace {

template <class T> void convert(const pgcm::row& r) {
  try {
    (void)r.get<T>(0);
    (void)r.get<T>("c");
  } catch (const pgcm::error&) {
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text{reinterpret_cast<const char*>(data), size};
  pgcm::result_set rs{{"c"}, {25}};
  rs.add_row({text});
  rs.add_row({std::nullopt});
  for (auto r : rs) {
    convert<std::string>(r);
    convert<bool>(r);
    convert<std::int16_t>(r);
    convert<std::int32_t>(r);
    convert<std::int64_t>(r);
    convert<double>(r);
    convert<std::optional<bool>>(r);
    convert<std::optional<std::int64_t>>(r);
    convert<std::optional<double>>(r);
  }
  // Arbitrary storage (what a peer could send) is either consistent or rejected.
  pgcm::result_set::storage s;
  s.names = {"a", "b"};
  s.values = std::string{text};
  for (std::size_t i = 0; i + 4 <= size && s.ends.size() < 8; i += 4)
    s.ends.push_back(static_cast<std::uint32_t>(data[i]) |
                     (static_cast<std::uint32_t>(data[i + 1]) << 8));
  s.nulls.assign(s.ends.size(), 0);
  s.rows = s.ends.size() / 2;
  s.type_oids = {25, 25};
  try {
    pgcm::result_set adopted{s};
    for (auto r : adopted)
      convert<std::string>(r);
  } catch (const pgcm::error&) {
  }
  return 0;
}
