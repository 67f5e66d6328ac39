// stream_rss MODE [ROWS]: reads `SELECT g, md5(g::text) FROM generate_series(1, ROWS) g`
// (default 2,000,000 rows) from node0 of the test cluster through query_stream()
// (MODE "stream") or query() (MODE "query") and prints
//   rows <n> peak_rss_kb <VmHWM of this process>
// Run in a process of its own by test_stream, so that the peak is this read's.
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include "../integration/fixture.hpp"

using namespace pgcm;

namespace {

long peak_rss_kb() {
  std::ifstream in{"/proc/self/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: stream_rss stream|query [ROWS]\n";
    return 2;
  }
  std::string mode = argv[1];
  long n = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 2'000'000;
  auto sql = "SELECT g, md5(g::text) FROM generate_series(1, " + std::to_string(n) + ") g";
  try {
    auto opts = test::fast_options();
    opts.query_timeout = std::chrono::seconds{120};
    connection_manager mgr{opts};
    mgr.initialize({{"node0", test::node("node0")}});
    std::uint64_t rows = 0;
    std::uint64_t text = 0; // touch every cell
    if (mode == "stream") {
      rows = mgr.query_stream("node0", sql, {}, [&](const result_set& chunk) {
        for (auto r : chunk)
          text += r.get<std::string_view>(1).size();
      });
    } else if (mode == "query") {
      auto rs = mgr.query("node0", sql);
      for (auto r : rs)
        text += r.get<std::string_view>(1).size();
      rows = rs.size();
    } else {
      std::cerr << "unknown mode " << mode << "\n";
      return 2;
    }
    if (text != rows * 32) {
      std::cerr << "unexpected cell text: " << text << " bytes for " << rows << " rows\n";
      return 1;
    }
    std::cout << "rows " << rows << " peak_rss_kb " << peak_rss_kb() << std::endl;
    mgr.shutdown();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "stream_rss: " << e.what() << "\n";
    return 1;
  }
}
