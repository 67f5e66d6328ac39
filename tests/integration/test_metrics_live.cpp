// prometheus_metrics on a live manager: the query-duration histogram counts
// real answers with their real durations, and promtool accepts the text.
#define BOOST_TEST_MODULE test_metrics_live
#include <boost/test/unit_test.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <unistd.h>

#include <pgcm/metrics.hpp>

#include "fixture.hpp"

using namespace std::chrono_literals;
using namespace pgcm;

BOOST_AUTO_TEST_CASE(histogram_counts_answers_with_their_durations) {
  connection_manager mgr{test::fast_options()};
  mgr.initialize(test::all_nodes());
  for (int i = 0; i < 20; ++i)
    mgr.query("node0", "SELECT 1");
  for (int i = 0; i < 3; ++i)
    mgr.query("node0", "SELECT pg_sleep(0.06)");
  BOOST_CHECK_THROW(mgr.query("node0", "SELECT no_such_column"), pgcm::error);
  BOOST_REQUIRE(test::eventually([&] {
    auto s = mgr.get_pool_stats("node0");
    return s && s->query_duration_count >= 24;
  }));
  auto s = *mgr.get_pool_stats("node0");
  BOOST_TEST(s.query_duration_count == s.queries_ok + s.queries_failed + s.queries_timed_out);
  // The three sleeps took at least 60 ms each: not in the 50 ms bucket, all
  // within 10 s; the sum covers them.
  BOOST_TEST(s.query_duration_le_50ms <= s.query_duration_count - 3);
  BOOST_TEST(s.query_duration_le_10s == s.query_duration_count);
  BOOST_TEST(s.query_duration_sum_us >= 180'000);
  std::int64_t previous = 0;
#define PGCM_X(name, bound_us)                                                                     \
  BOOST_TEST(s.name >= previous, #name);                                                           \
  previous = s.name;
  PGCM_QUERY_DURATION_BUCKETS(PGCM_X)
#undef PGCM_X

  auto text = prometheus_metrics(mgr);
  BOOST_TEST(text.find("pgcm_query_duration_seconds_count{node=\"node0\"} " +
                       std::to_string(s.query_duration_count)) != std::string::npos);
  BOOST_TEST(text.find("pgcm_node_healthy{node=\"node1\"} 1\n") != std::string::npos);
  char path[] = "/tmp/pgcm-metrics-live-XXXXXX";
  int fd = ::mkstemp(path);
  BOOST_REQUIRE(fd >= 0);
  ::close(fd);
  {
    std::ofstream f{path};
    f << text;
  }
  int rc = std::system((std::string{"promtool check metrics < "} + path).c_str());
  std::remove(path);
  BOOST_TEST(rc == 0, text);
  mgr.shutdown();
}
