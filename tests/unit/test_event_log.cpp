#define BOOST_TEST_MODULE test_event_log
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "event_log.hpp"

using namespace pgcm;
using namespace pgcm::cli;
using namespace std::chrono_literals;

namespace {

std::chrono::system_clock::time_point at_ms(std::int64_t ms) {
  return std::chrono::system_clock::time_point{std::chrono::milliseconds{ms}};
}

/// Collects lines; while `blocked`, write() waits (a disk that does not keep up).
class slow_sink : public event_sink {
public:
  void write(std::string_view line) override {
    std::unique_lock<std::mutex> lk{mu_};
    ++entered_;
    cv_.notify_all();
    cv_.wait(lk, [&] { return !blocked_; });
    lines_.emplace_back(line);
  }
  std::string name() const override { return "slow"; }

  void block() {
    std::lock_guard<std::mutex> lk{mu_};
    blocked_ = true;
  }
  void release() {
    std::lock_guard<std::mutex> lk{mu_};
    blocked_ = false;
    cv_.notify_all();
  }
  /// Waits until a write() is under way (and blocked).
  bool wait_entered(int n) {
    std::unique_lock<std::mutex> lk{mu_};
    return cv_.wait_for(lk, 30s, [&] { return entered_ >= n; });
  }
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> lk{mu_};
    return lines_;
  }

private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool blocked_ = false;
  int entered_ = 0;
  std::vector<std::string> lines_;
};

struct temp_dir {
  std::string path;
  temp_dir() {
    char tmpl[] = "/tmp/pgcm-event-log-XXXXXX";
    BOOST_REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~temp_dir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

std::vector<std::string> read_lines(const std::string& p) {
  std::vector<std::string> out;
  std::ifstream in{p};
  for (std::string l; std::getline(in, l);)
    out.push_back(l);
  return out;
}

std::string numbered(int i) {
  std::string s = "{\"n\":" + std::to_string(i) + ",\"pad\":\"";
  s += std::string(40, 'x') + "\"}\n";
  return s;
}

} // namespace

BOOST_AUTO_TEST_CASE(json_line_shape) {
  node_event e;
  e.type = event::node_added;
  e.node_id = "primary";
  BOOST_TEST(event_json_line(e, at_ms(1'700'000'000'123)) ==
             "{\"time\":\"2023-11-14T22:13:20.123Z\",\"type\":\"node:added\",\"node\":\"primary\"}"
             "\n");

  node_event h;
  h.type = event::node_health;
  h.node_id = "r\"1";
  health_status hs;
  hs.status = health_state::unhealthy;
  hs.role = node_role::standby;
  hs.latency = microseconds{1500};
  hs.consecutive_failures = 3;
  hs.last_error = "connection refused";
  hs.last_check = at_ms(1'700'000'000'000);
  h.health = hs;
  BOOST_TEST(event_json_line(h, at_ms(1'700'000'000'001)) ==
             "{\"time\":\"2023-11-14T22:13:20.001Z\",\"type\":\"node:health\",\"node\":\"r\\\"1\","
             "\"health\":{\"role\":\"standby\",\"status\":\"unhealthy\",\"timeline\":0,"
             "\"system_identifier\":null,\"wal_lsn\":null,\"receive_lsn\":null,\"lag_bytes\":null,"
             "\"lag_ms\":null,\"conflict\":null,\"latency_us\":1500,"
             "\"consecutive_failures\":3,\"last_error\":\"connection refused\","
             "\"last_check\":\"2023-11-14T22:13:20.000Z\"}}\n");

  node_event s;
  s.type = event::pool_stats;
  s.node_id = "a";
  pool_stats ps;
  ps.total_connections = 4;
  ps.queries_ok = 17;
  s.stats = ps;
  auto line = event_json_line(s, at_ms(0));
  BOOST_TEST(
      line.find("\"type\":\"pool:stats\",\"node\":\"a\",\"pool\":{\"total_connections\":4,") !=
      std::string::npos);
  BOOST_TEST(line.find("\"queries_ok\":17") != std::string::npos);
  BOOST_TEST(line.find("\"health\"") == std::string::npos);

  node_event d;
  d.type = event::node_disconnected;
  d.node_id = "a";
  d.error = error_info{errc::connection_failed, "node a: server closed the connection", "57P01"};
  line = event_json_line(d, at_ms(0));
  BOOST_TEST(line.find("\"error\":{\"code\":\"" + to_string(errc::connection_failed) +
                       "\",\"message\":\"node a: server closed the connection\","
                       "\"sqlstate\":\"57P01\"}}\n") != std::string::npos,
             line);

  BOOST_TEST(
      dropped_json_line(42, at_ms(0)) ==
      "{\"time\":\"1970-01-01T00:00:00.000Z\",\"type\":\"event_log_dropped\",\"count\":42}\n");
}

BOOST_AUTO_TEST_CASE(sizes) {
  BOOST_TEST(parse_size("10MB").value_or(0) == 10u * 1024 * 1024);
  BOOST_TEST(parse_size("512k").value_or(0) == 512u * 1024);
  BOOST_TEST(parse_size("1GiB").value_or(0) == 1024u * 1024 * 1024);
  BOOST_TEST(parse_size("4096").value_or(0) == 4096u);
  BOOST_TEST(parse_size("100B").value_or(0) == 100u);
  BOOST_TEST(!parse_size(""));
  BOOST_TEST(!parse_size("MB"));
  BOOST_TEST(!parse_size("0"));
  BOOST_TEST(!parse_size("-1MB"));
  BOOST_TEST(!parse_size("1.5MB"));
  BOOST_TEST(!parse_size("10 MB"));
  BOOST_TEST(!parse_size("10TB"));
  BOOST_TEST(!parse_size("99999999999999999999999"));
  BOOST_TEST(!parse_size("2000GB"));
}

// Every line lands, in order, and rotation keeps FILE.1 to FILE.3.
BOOST_AUTO_TEST_CASE(rotation_keeps_three) {
  temp_dir dir;
  auto file = dir.path + "/events.jsonl";
  const std::uint64_t max = 500;
  const int count = 100;
  {
    event_log log{std::make_unique<rotating_file_sink>(file, max), 1000};
    for (int i = 0; i < count; ++i)
      BOOST_REQUIRE(log.push(numbered(i)));
    BOOST_REQUIRE(log.wait_idle(30s));
    BOOST_TEST(log.written() == static_cast<std::uint64_t>(count));
    BOOST_TEST(log.dropped() == 0u);
  }
  BOOST_TEST(!exists(file + ".4"));
  // Oldest first: FILE.3, FILE.2, FILE.1, FILE; consecutive numbers ending at count-1.
  std::vector<std::string> all;
  for (auto* suffix : {".3", ".2", ".1", ""}) {
    auto p = file + suffix;
    BOOST_REQUIRE_MESSAGE(exists(p), p);
    struct stat st {};
    ::stat(p.c_str(), &st);
    BOOST_TEST(static_cast<std::uint64_t>(st.st_size) <= max, p << ": " << st.st_size);
    BOOST_TEST(st.st_size > 0);
    for (auto& l : read_lines(p))
      all.push_back(l);
  }
  BOOST_REQUIRE(!all.empty());
  BOOST_TEST(all.back() + "\n" == numbered(count - 1));
  int first = std::stoi(all.front().substr(5));
  BOOST_TEST(first > 0); // the oldest files were deleted
  for (std::size_t k = 0; k < all.size(); ++k)
    BOOST_TEST(all[k] + "\n" == numbered(first + static_cast<int>(k)));

  // A restart appends to FILE (its size counts toward the limit).
  {
    event_log log{std::make_unique<rotating_file_sink>(file, max), 10};
    BOOST_REQUIRE(log.push(numbered(count)));
    BOOST_REQUIRE(log.wait_idle(30s));
  }
  auto last = read_lines(file);
  BOOST_TEST(last.back().find("\"n\":" + std::to_string(count) + ",") == 1u);
  BOOST_TEST(!exists(file + ".4"));
}

BOOST_AUTO_TEST_CASE(unwritable_file_is_reported) {
  BOOST_CHECK_EXCEPTION(rotating_file_sink("/nonexistent/dir/events.jsonl", 1024),
                        std::system_error, [](const std::system_error& e) {
                          return std::string{e.what()}.find("/nonexistent/dir/events.jsonl") !=
                                 std::string::npos;
                        });
  cli_options opts;
  opts.event_log = "/nonexistent/dir/events.jsonl";
  BOOST_CHECK_EXCEPTION(open_event_log(opts), usage_error, [](const usage_error& e) {
    return std::string{e.what()}.find("--event-log /nonexistent/dir/events.jsonl") == 0;
  });
  BOOST_TEST(!open_event_log(cli_options{}));
}

// A disk that stops: the producer never waits, lines beyond the queue are
// dropped and counted, and once the disk is back the count is written.
BOOST_AUTO_TEST_CASE(slow_disk_drops_and_counts) {
  auto sink_owner = std::make_unique<slow_sink>();
  auto& sink = *sink_owner;
  const std::size_t capacity = 50;
  event_log log{std::move(sink_owner), capacity};

  sink.block();
  BOOST_REQUIRE(log.push(numbered(0))); // the writer takes it and blocks in write()
  BOOST_REQUIRE(sink.wait_entered(1));

  // 1000 events while the writer is stuck: all calls return (the writer is
  // still blocked when they do), at most `capacity` are queued.
  const int burst = 1000;
  auto producer = std::async(std::launch::async, [&] {
    int accepted = 0;
    for (int i = 1; i <= burst; ++i)
      accepted += log.push(numbered(i)) ? 1 : 0;
    return accepted;
  });
  BOOST_REQUIRE_MESSAGE(producer.wait_for(60s) == std::future_status::ready,
                        "the producer blocked behind the stuck writer");
  int accepted = producer.get();
  BOOST_TEST(accepted == static_cast<int>(capacity));
  BOOST_TEST(log.dropped() == static_cast<std::uint64_t>(burst - accepted));
  BOOST_TEST(sink.lines().empty()); // still stuck: nothing was written meanwhile

  sink.release();
  BOOST_REQUIRE(log.wait_idle(30s));
  auto lines = sink.lines();
  // The first line, the queued ones in order, then the drop record.
  BOOST_REQUIRE(lines.size() == static_cast<std::size_t>(accepted) + 2);
  BOOST_TEST(lines[0] == numbered(0));
  for (int i = 1; i <= accepted; ++i)
    BOOST_TEST(lines[static_cast<std::size_t>(i)] == numbered(i));
  auto& record = lines.back();
  BOOST_TEST(record.find("\"type\":\"event_log_dropped\",\"count\":" +
                         std::to_string(burst - accepted) + "}") != std::string::npos,
             record);
  BOOST_TEST(log.written() == static_cast<std::uint64_t>(accepted) + 1);

  // Afterwards the log works normally and drops nothing.
  BOOST_TEST(log.push(numbered(5000)));
  BOOST_REQUIRE(log.wait_idle(30s));
  BOOST_TEST(sink.lines().back() == numbered(5000));
  BOOST_TEST(log.dropped() == static_cast<std::uint64_t>(burst - accepted));
}

// close() on a sink that never comes back returns (bounded) instead of hanging.
BOOST_AUTO_TEST_CASE(close_does_not_hang_on_a_stuck_disk) {
  auto sink_owner = std::make_unique<slow_sink>();
  auto& sink = *sink_owner;
  sink.block();
  auto log = std::make_unique<event_log>(std::move(sink_owner), 10);
  BOOST_REQUIRE(log->push(numbered(0)));
  BOOST_REQUIRE(sink.wait_entered(1));
  BOOST_REQUIRE(log->push(numbered(1)));
  auto closing = std::async(std::launch::async, [&] { log->close(200ms); });
  BOOST_REQUIRE_MESSAGE(closing.wait_for(60s) == std::future_status::ready, "close() hung");
  BOOST_TEST(log->dropped() == 1u); // the queued line
  BOOST_TEST(!log->push(numbered(2)));
  log.reset();
  sink.release(); // the left-behind writer finishes; the sink is still owned by it
}
