// pgcm::prometheus_metrics: the Prometheus text format (0.0.4) of node
// snapshots: HELP/TYPE per family, label escaping, the query-duration
// histogram (cumulative buckets, +Inf, _sum, _count), and promtool's verdict.
#define BOOST_TEST_MODULE test_metrics
#include <boost/test/unit_test.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <pgcm/metrics.hpp>

using namespace pgcm;

namespace {

node_info make_node(std::string id, health_state status, node_role role) {
  node_info n;
  n.id = std::move(id);
  n.pool.node_id = n.id;
  n.health.status = status;
  n.health.role = role;
  n.health.latency = microseconds{1250};
  n.health.consecutive_failures = status == health_state::unhealthy ? 4 : 0;
  n.pool.total_connections = 5;
  n.pool.idle_connections = 2;
  n.pool.waiting_requests = 7;
  n.pool.queries_ok = 100;
  n.pool.queries_failed = 3;
  n.pool.queries_timed_out = 1;
  n.pool.connections_opened = 6;
  n.pool.connect_failures = 2;
  n.health.timeline = 3;
  if (role == node_role::standby) {
    n.health.lag_bytes = 16384;
    n.health.lag = milliseconds{1500};
  }
  return n;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in{text};
  for (std::string l; std::getline(in, l);)
    out.push_back(l);
  return out;
}

/// The value of the sample whose name-and-labels part is exactly `series`.
std::string value_of(const std::string& text, const std::string& series) {
  for (auto& l : lines_of(text))
    if (l.size() > series.size() && l.compare(0, series.size(), series) == 0 &&
        l[series.size()] == ' ')
      return l.substr(series.size() + 1);
  return "<missing " + series + ">";
}

/// Runs `promtool check metrics` on `text`; returns its exit status and output.
std::pair<int, std::string> promtool_check(const std::string& text) {
  char in_path[] = "/tmp/pgcm-metrics-XXXXXX";
  int fd = ::mkstemp(in_path);
  BOOST_REQUIRE(fd >= 0);
  ::close(fd);
  {
    std::ofstream f{in_path};
    f << text;
  }
  std::string out_path = std::string{in_path} + ".out";
  std::string cmd = std::string{"promtool check metrics < "} + in_path + " > " + out_path + " 2>&1";
  int rc = std::system(cmd.c_str());
  std::ifstream o{out_path};
  std::stringstream ss;
  ss << o.rdbuf();
  std::remove(in_path);
  std::remove(out_path.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, ss.str()};
}

} // namespace

BOOST_AUTO_TEST_CASE(label_values_are_escaped) {
  BOOST_TEST(prometheus_escape_label("plain-id_1") == "plain-id_1");
  BOOST_TEST(prometheus_escape_label("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
  auto text =
      prometheus_metrics({make_node("we\"ird\\id\nx", health_state::healthy, node_role::primary)});
  BOOST_TEST(value_of(text, "pgcm_node_healthy{node=\"we\\\"ird\\\\id\\nx\"}") == "1");
  // No raw newline inside a sample line: every line is a comment or a sample.
  for (auto& l : lines_of(text))
    BOOST_TEST((l.rfind("# ", 0) == 0 || l.rfind("pgcm_", 0) == 0), l);
}

BOOST_AUTO_TEST_CASE(every_family_has_help_and_type_once_before_its_samples) {
  auto text = prometheus_metrics({make_node("node0", health_state::healthy, node_role::primary),
                                  make_node("node1", health_state::unhealthy, node_role::standby)});
  const std::map<std::string, std::string> families = {
      {"pgcm_node_healthy", "gauge"},
      {"pgcm_node_is_primary", "gauge"},
      {"pgcm_node_probe_latency_seconds", "gauge"},
      {"pgcm_node_consecutive_failures", "gauge"},
      {"pgcm_pool_connections", "gauge"},
      {"pgcm_pool_waiting_requests", "gauge"},
      {"pgcm_queries_total", "counter"},
      {"pgcm_connections_opened_total", "counter"},
      {"pgcm_connect_failures_total", "counter"},
      {"pgcm_query_duration_seconds", "histogram"},
      {"pgcm_node_timeline", "gauge"},
      {"pgcm_node_replication_lag_bytes", "gauge"},
      {"pgcm_node_replication_lag_seconds", "gauge"},
      {"pgcm_node_in_conflict", "gauge"},
  };
  auto lines = lines_of(text);
  for (auto& [name, type] : families) {
    int help = 0;
    int types = 0;
    std::size_t type_at = lines.size();
    std::size_t first_sample = lines.size();
    for (std::size_t i = 0; i < lines.size(); ++i) {
      auto& l = lines[i];
      if (l.rfind("# HELP " + name + " ", 0) == 0) ++help;
      if (l == "# TYPE " + name + " " + type) {
        ++types;
        type_at = i;
      }
      if (l.rfind(name + "{", 0) == 0 || l.rfind(name + "_bucket{", 0) == 0)
        first_sample = std::min(first_sample, i);
    }
    BOOST_TEST(help == 1, name);
    BOOST_TEST(types == 1, name);
    BOOST_TEST(type_at < first_sample, name);
    BOOST_TEST(first_sample < lines.size(), name << " has no sample");
  }
  BOOST_TEST(value_of(text, "pgcm_node_healthy{node=\"node0\"}") == "1");
  BOOST_TEST(value_of(text, "pgcm_node_healthy{node=\"node1\"}") == "0");
  BOOST_TEST(value_of(text, "pgcm_node_is_primary{node=\"node0\"}") == "1");
  BOOST_TEST(value_of(text, "pgcm_node_is_primary{node=\"node1\"}") == "0");
  BOOST_TEST(value_of(text, "pgcm_node_probe_latency_seconds{node=\"node0\"}") == "0.00125");
  BOOST_TEST(value_of(text, "pgcm_node_consecutive_failures{node=\"node1\"}") == "4");
  BOOST_TEST(value_of(text, "pgcm_pool_connections{node=\"node0\",state=\"idle\"}") == "2");
  BOOST_TEST(value_of(text, "pgcm_pool_connections{node=\"node0\",state=\"busy\"}") == "3");
  BOOST_TEST(value_of(text, "pgcm_pool_waiting_requests{node=\"node0\"}") == "7");
  BOOST_TEST(value_of(text, "pgcm_queries_total{node=\"node0\",outcome=\"ok\"}") == "100");
  BOOST_TEST(value_of(text, "pgcm_queries_total{node=\"node0\",outcome=\"failed\"}") == "3");
  BOOST_TEST(value_of(text, "pgcm_queries_total{node=\"node0\",outcome=\"timed_out\"}") == "1");
  BOOST_TEST(value_of(text, "pgcm_connections_opened_total{node=\"node1\"}") == "6");
  BOOST_TEST(value_of(text, "pgcm_connect_failures_total{node=\"node1\"}") == "2");
  BOOST_TEST(value_of(text, "pgcm_node_timeline{node=\"node0\"}") == "3");
  BOOST_TEST(value_of(text, "pgcm_node_replication_lag_bytes{node=\"node1\"}") == "16384");
  BOOST_TEST(value_of(text, "pgcm_node_replication_lag_seconds{node=\"node1\"}") == "1.5");
  BOOST_TEST(value_of(text, "pgcm_node_in_conflict{node=\"node0\"}") == "0");
  // A primary has no lag series.
  BOOST_TEST(text.find("pgcm_node_replication_lag_bytes{node=\"node0\"}") == std::string::npos);
  BOOST_TEST(text.back() == '\n');
}

BOOST_AUTO_TEST_CASE(histogram_buckets_are_cumulative_with_inf_sum_and_count) {
  auto n = make_node("node0", health_state::healthy, node_role::primary);
  // 10 answers: 4 within 0.5 ms, 3 more within 5 ms, 2 within 1 s, 1 above 10 s.
  n.pool.query_duration_le_500us = 4;
  n.pool.query_duration_le_1ms = 4;
  n.pool.query_duration_le_2500us = 5;
  n.pool.query_duration_le_5ms = 7;
  n.pool.query_duration_le_10ms = 7;
  n.pool.query_duration_le_25ms = 7;
  n.pool.query_duration_le_50ms = 7;
  n.pool.query_duration_le_100ms = 7;
  n.pool.query_duration_le_250ms = 8;
  n.pool.query_duration_le_500ms = 8;
  n.pool.query_duration_le_1s = 9;
  n.pool.query_duration_le_2500ms = 9;
  n.pool.query_duration_le_5s = 9;
  n.pool.query_duration_le_10s = 9;
  n.pool.query_duration_count = 10;
  n.pool.query_duration_sum_us = 12'345'678;
  auto text = prometheus_metrics({n});
  std::vector<std::pair<std::string, long>> buckets;
  const std::string prefix = "pgcm_query_duration_seconds_bucket{node=\"node0\",le=\"";
  for (auto& l : lines_of(text)) {
    if (l.rfind(prefix, 0) != 0) continue;
    auto end = l.find('"', prefix.size());
    buckets.emplace_back(l.substr(prefix.size(), end - prefix.size()),
                         std::stol(l.substr(l.find("} ") + 2)));
  }
  BOOST_REQUIRE(buckets.size() == 15u);
  BOOST_TEST(buckets.front().first == "0.0005");
  BOOST_TEST(buckets.front().second == 4);
  BOOST_TEST(buckets[3].first == "0.005");
  BOOST_TEST(buckets[3].second == 7);
  BOOST_TEST(buckets[13].first == "10");
  BOOST_TEST(buckets.back().first == "+Inf");
  BOOST_TEST(buckets.back().second == 10);
  double last_bound = 0;
  for (std::size_t i = 1; i < buckets.size(); ++i) {
    BOOST_TEST(buckets[i].second >= buckets[i - 1].second, buckets[i].first);
    if (buckets[i].first != "+Inf") {
      BOOST_TEST(std::stod(buckets[i].first) > last_bound);
      last_bound = std::stod(buckets[i].first);
    }
  }
  BOOST_TEST(value_of(text, "pgcm_query_duration_seconds_count{node=\"node0\"}") == "10");
  BOOST_TEST(value_of(text, "pgcm_query_duration_seconds_sum{node=\"node0\"}") == "12.345678");
}

BOOST_AUTO_TEST_CASE(no_nodes_still_gives_valid_text) {
  auto text = prometheus_metrics(std::vector<node_info>{});
  BOOST_TEST(text.find("# TYPE pgcm_node_healthy gauge\n") != std::string::npos);
  auto [rc, out] = promtool_check(text);
  BOOST_TEST(rc == 0, out);
}

BOOST_AUTO_TEST_CASE(promtool_accepts_the_text) {
  auto n = make_node("node \"0\"\\\n", health_state::healthy, node_role::primary);
  n.pool.query_duration_le_10s = 1;
  n.pool.query_duration_count = 1;
  n.pool.query_duration_sum_us = 3000;
  auto text =
      prometheus_metrics({n, make_node("node1", health_state::unknown, node_role::unknown)});
  auto [rc, out] = promtool_check(text);
  BOOST_TEST(rc == 0, out << "\n" << text);
  // promtool really looks: a text with a broken line is refused.
  auto [bad_rc, bad_out] = promtool_check(text + "pgcm_node_healthy{node=\"x} 1\n");
  BOOST_TEST(bad_rc != 0, bad_out);
}
