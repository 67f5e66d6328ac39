// The manager's lifecycle on a real cluster: config validation before
// anything connects, nodes down at start, add/remove at runtime, bounded
// shutdown with hung queries and with every node down (every request
// answered exactly once), the destructor, and passwords that never leak.
#define BOOST_TEST_MODULE test_lifecycle
#include <boost/test/unit_test.hpp>

#include <array>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/logger.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include <pgcm/actors/cluster_manager.hpp>
#include <pgcm/actors/remote_link.hpp>
#include <pgcm/logging.hpp>
#include <pgcm/messages/error.hpp>
#include <pgcm/messages/protocol.hpp>

#include "pgcm/messages/internal_protocol.hpp"

#include "fixture.hpp"
#include "shutdown_race.hpp"

using namespace std::chrono_literals;
using namespace pgcm;
using pgcm::test::cluster;
using strings = std::vector<std::string>;

namespace {

/// A TCP port on 127.0.0.1 that nothing listens on (connections are refused).
std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// A TCP listener that completes handshakes (the kernel does) but never
/// answers: a hung server.
class silent_server {
public:
  silent_server() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(fd_, 64);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~silent_server() { ::close(fd_); }
  std::uint16_t port() const { return port_; }

private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

/// How often `needle` occurs in `haystack`.
int occurrences(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (auto i = haystack.find(needle); i != std::string::npos; i = haystack.find(needle, i + 1))
    ++n;
  return n;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

/// Our server connections on every node (the cluster must be up).
int connections_everywhere() {
  int n = 0;
  for (auto& node : cluster::get().nodes())
    n += test::server_connections(node);
  return n;
}

/// Our server connections on every node, one line each (for failure messages).
std::string dump_connections() {
  std::string out;
  for (auto& node : cluster::get().nodes())
    out += node + ":\n" +
           cluster::get().admin_sql(
               node, "SELECT pid, state, backend_start, state_change, query FROM pg_stat_activity "
                     "WHERE application_name = '" +
                         test::app_name() + "'") +
           "\n";
  return out;
}

/// Checks that every server connection of ours is gone (soon).
void check_all_connections_closed() {
  bool closed = test::eventually([] { return connections_everywhere() == 0; }, 10s);
  BOOST_CHECK_MESSAGE(closed, "connections left:\n" << dump_connections());
}

/// Active `sql` statements of ours on `node`.
int active(const std::string& node, const std::string& sql) {
  return std::stoi(cluster::get().admin_sql(
      node, "SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + test::app_name() +
                "' AND state = 'active' AND query = '" + sql + "'"));
}

/// The shutdown bound of the tests: shutdown_timeout plus a margin for a
/// shared, noisy machine.
long long shutdown_bound(const manager_options& o) {
  return o.shutdown_timeout.count() + 2500;
}

} // namespace

// -- configuration --------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(configuration)

BOOST_AUTO_TEST_CASE(invalid_configs_throw_before_anything_connects) {
  auto good = test::node("node0");
  auto with = [&](auto change) {
    auto cfg = test::node("node1");
    change(cfg);
    return cfg;
  };
  struct bad_case {
    std::string what;
    std::vector<std::pair<std::string, node_config>> nodes;
    errc code;
    strings must_name;
  };
  std::vector<bad_case> cases{
      {"empty host",
       {{"node0", good}, {"bad", with([](node_config& c) { c.host.clear(); })}},
       errc::invalid_config,
       {"bad", "host"}},
      {"port 0",
       {{"node0", good}, {"bad", with([](node_config& c) { c.port = 0; })}},
       errc::invalid_config,
       {"bad", "port"}},
      {"pool.min > pool.max",
       {{"node0", good}, {"bad", with([](node_config& c) {
                            c.pool.min = 5;
                            c.pool.max = 2;
                          })}},
       errc::invalid_config,
       {"bad", "pool.min", "pool.max"}},
      {"ssl without ca",
       {{"node0", good}, {"bad", with([](node_config& c) {
                            c.ssl.enabled = true;
                            c.ssl.reject_unauthorized = true;
                          })}},
       errc::invalid_config,
       {"bad", "ssl.ca"}},
      {"missing ca file",
       {{"node0", good}, {"bad", with([](node_config& c) {
                            c.ssl.enabled = true;
                            c.ssl.reject_unauthorized = true;
                            c.ssl.ca = "/nonexistent/pgcm-test-ca.pem";
                          })}},
       errc::invalid_config,
       {"bad", "ssl.ca", "/nonexistent/pgcm-test-ca.pem"}},
      {"duplicate id",
       {{"node0", good}, {"node1", test::node("node1")}, {"node0", good}},
       errc::duplicate_node,
       {"node0"}},
      {"empty id", {{"node0", good}, {"", good}}, errc::invalid_config, {"id"}},
  };
  // Earlier managers of this process are gone, their backends too.
  BOOST_REQUIRE(test::eventually([] { return connections_everywhere() == 0; }, 10s));
  for (auto& c : cases) {
    BOOST_TEST_CONTEXT(c.what) {
      auto rec = std::make_shared<test::event_recorder>();
      connection_manager mgr{test::fast_options()};
      auto sub = mgr.on_any([rec](const node_event& e) { (*rec)(e); });
      try {
        mgr.initialize(c.nodes);
        BOOST_ERROR("initialize accepted an invalid config");
      } catch (const error& e) {
        BOOST_CHECK_EQUAL(to_string(e.code()), to_string(c.code));
        for (auto& word : c.must_name)
          BOOST_CHECK_MESSAGE(contains(e.what(), word), "\"" << e.what() << "\" lacks " << word);
      }
      // Nothing was added, nothing connected (the valid node0 neither).
      BOOST_CHECK(mgr.get_nodes().empty());
      BOOST_CHECK(!mgr.has_node("node0"));
      BOOST_CHECK_EQUAL(test::server_connections("node0"), 0);
      BOOST_CHECK_EQUAL(test::server_connections("node1"), 0);
      BOOST_CHECK(rec->all().empty());
    }
  }
  // A rejected initialize leaves the manager usable.
  connection_manager mgr{test::fast_options()};
  BOOST_CHECK_THROW(mgr.initialize(cases[1].nodes), error);
  mgr.initialize({{"node0", good}});
  BOOST_CHECK_EQUAL(mgr.query("node0", "SELECT 1")[0].get<int>(0), 1);
  // add_node validates too, and names node and field.
  try {
    mgr.add_node("late", with([](node_config& c) { c.port = 0; }));
    BOOST_ERROR("add_node accepted port 0");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::invalid_config);
    BOOST_CHECK(contains(e.what(), "late"));
    BOOST_CHECK(contains(e.what(), "port"));
  }
  BOOST_CHECK(!mgr.has_node("late"));
}

BOOST_AUTO_TEST_CASE(invalid_manager_options_are_rejected) {
  auto o = test::fast_options();
  o.unhealthy_threshold = 0;
  try {
    connection_manager mgr{o};
    BOOST_ERROR("unhealthy_threshold 0 accepted");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::invalid_config);
    BOOST_CHECK(contains(e.what(), "unhealthy_threshold"));
  }
  o = test::fast_options();
  o.query_timeout = 0ms;
  BOOST_CHECK_THROW(connection_manager{o}, error);
}

BOOST_AUTO_TEST_CASE(ssl_modes_against_the_tls_cluster) {
  auto ca = cluster::get().value("PGCM_TEST_CA");
  auto other_ca = cluster::get().value("PGCM_TEST_OTHER_CA");
  if (ca.empty()) {
    BOOST_TEST_MESSAGE("cluster without TLS; skipped");
    return;
  }
  auto verified = test::node("node0");
  verified.ssl.enabled = true;
  verified.ssl.reject_unauthorized = true;
  verified.ssl.ca = ca;
  auto encrypted = test::node("node1");
  encrypted.ssl.enabled = true;
  encrypted.ssl.reject_unauthorized = false;
  auto wrong_ca = test::node("node2");
  wrong_ca.ssl.enabled = true;
  wrong_ca.ssl.reject_unauthorized = true;
  wrong_ca.ssl.ca = other_ca;
  connection_manager mgr{test::fast_options()};
  mgr.initialize({{"verified", verified}, {"encrypted", encrypted}, {"wrong-ca", wrong_ca}});
  const std::string sql = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
  BOOST_CHECK(mgr.query("verified", sql)[0].get<bool>(0));
  BOOST_CHECK(mgr.query("encrypted", sql)[0].get<bool>(0));
  // A server certificate from another CA is refused: the node is down.
  auto h = mgr.get_health("wrong-ca");
  BOOST_REQUIRE(h);
  BOOST_CHECK(h->status == health_state::unhealthy);
  BOOST_CHECK_THROW(mgr.query("wrong-ca", "SELECT 1", {}, 3s), error);
}

BOOST_AUTO_TEST_SUITE_END()

// -- nodes down at start, add and remove ----------------------------------------

BOOST_AUTO_TEST_SUITE(runtime_nodes)

BOOST_AUTO_TEST_CASE(a_node_down_at_start_does_not_fail_initialize) {
  auto rec = std::make_shared<test::event_recorder>();
  connection_manager mgr{test::fast_options()};
  auto sub = mgr.on_any([rec](const node_event& e) { (*rec)(e); });
  auto nodes = test::all_nodes();
  auto ghost = test::node("node0");
  ghost.port = free_port();
  nodes.emplace_back("ghost", ghost);
  auto start = std::chrono::steady_clock::now();
  BOOST_REQUIRE_NO_THROW(mgr.initialize(nodes));
  BOOST_CHECK_LT(test::ms_since(start), 5000);
  auto h = mgr.get_health("ghost");
  BOOST_REQUIRE(h);
  BOOST_CHECK(h->status == health_state::unhealthy);
  BOOST_REQUIRE(h->last_error);
  BOOST_CHECK(contains(*h->last_error, "ghost"));
  for (auto& n : strings{"node0", "node1", "node2"})
    BOOST_CHECK(mgr.get_health(n)->status == health_state::healthy);
  BOOST_CHECK_EQUAL(mgr.get_healthy_nodes().size(), 3u);
  // Its queries fail fast; the others work.
  start = std::chrono::steady_clock::now();
  try {
    mgr.query("ghost", "SELECT 1", {}, 5s);
    BOOST_ERROR("query on a down node succeeded");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::connection_failed);
    BOOST_CHECK(contains(e.what(), "ghost"));
    // The stored connect error is not wrapped twice ("node ghost: connection
    // failed: node ghost: connection failed: ...").
    BOOST_CHECK_MESSAGE(occurrences(e.what(), "node ghost:") == 1 &&
                            occurrences(e.what(), "connection failed") == 1,
                        e.what());
  }
  BOOST_CHECK_LT(test::ms_since(start), 2500);
  auto all = mgr.query_all("SELECT 1", {}, 5s);
  BOOST_REQUIRE_EQUAL(all.size(), 4u);
  BOOST_CHECK(all[0].success && all[1].success && all[2].success);
  BOOST_CHECK(!all[3].success);
  BOOST_CHECK(all[3].error && all[3].error->code == errc::connection_failed);
  BOOST_CHECK_EQUAL(rec->count("ghost", event::node_added), 1u);
  BOOST_CHECK(test::eventually([&] { return rec->count("ghost", event::node_health) >= 1; }, 5s));
  BOOST_CHECK_EQUAL(rec->count("ghost", event::node_connected), 0u);
}

BOOST_AUTO_TEST_CASE(a_stopped_node_is_retried_until_it_comes_back) {
  connection_manager mgr{test::fast_options()};
  {
    test::stopped_node down{"node2"};
    BOOST_REQUIRE_NO_THROW(mgr.initialize(test::all_nodes()));
    BOOST_CHECK(mgr.get_health("node2")->status == health_state::unhealthy);
    BOOST_CHECK(mgr.get_health("node0")->status == health_state::healthy);
    BOOST_CHECK_THROW(mgr.query("node2", "SELECT 1", {}, 5s), error);
    down.start();
  }
  BOOST_CHECK(test::eventually(
      [&] { return mgr.get_health("node2")->status == health_state::healthy; }, 10s));
  BOOST_CHECK(test::eventually(
      [&] {
        try {
          return mgr.query("node2", "SELECT pg_is_in_recovery()")[0].get<bool>(0);
        } catch (const error&) {
          return false;
        }
      },
      10s));
  BOOST_CHECK(mgr.get_health("node2")->role == node_role::standby);
}

BOOST_AUTO_TEST_CASE(add_and_remove_at_runtime) {
  auto rec = std::make_shared<test::event_recorder>();
  connection_manager mgr{test::fast_options()};
  auto sub = mgr.on_any([rec](const node_event& e) { (*rec)(e); });
  mgr.initialize({{"node0", test::node("node0")}, {"node1", test::node("node1")}});
  BOOST_CHECK(!mgr.has_node("node2"));
  BOOST_CHECK_EQUAL(test::server_connections("node2"), 0);

  mgr.add_node("node2", test::node("node2"));
  BOOST_CHECK(mgr.has_node("node2"));
  BOOST_CHECK(mgr.get_health("node2")->status == health_state::healthy);
  BOOST_CHECK_EQUAL(mgr.query("node2", "SELECT current_setting('port')::int")[0].get<int>(0),
                    cluster::get().port("node2"));
  BOOST_CHECK_GT(test::server_connections("node2"), 0);
  BOOST_CHECK_EQUAL(mgr.query_all("SELECT 1").size(), 3u);
  BOOST_CHECK(test::eventually([&] { return rec->count("node2", event::node_added) == 1; }, 5s));

  try {
    mgr.add_node("node2", test::node("node2"));
    BOOST_ERROR("duplicate add_node accepted");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::duplicate_node);
    BOOST_CHECK(contains(e.what(), "node2"));
  }
  try {
    mgr.remove_node("nope");
    BOOST_ERROR("remove_node of an unknown node accepted");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::node_not_found);
    BOOST_CHECK(contains(e.what(), "nope"));
  }

  mgr.remove_node("node2");
  BOOST_CHECK(!mgr.has_node("node2"));
  BOOST_CHECK(!mgr.get_health("node2"));
  BOOST_CHECK_EQUAL(mgr.get_nodes().size(), 2u);
  BOOST_CHECK_EQUAL(mgr.query_all("SELECT 1").size(), 2u);
  // Its connections are closed.
  BOOST_CHECK(test::eventually([] { return test::server_connections("node2") == 0; }, 5s));
  BOOST_CHECK(test::eventually([&] { return rec->count("node2", event::node_removed) == 1; }, 5s));
  try {
    mgr.query("node2", "SELECT 1");
    BOOST_ERROR("query on a removed node succeeded");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::node_not_found);
  }
  BOOST_CHECK_THROW(mgr.remove_node("node2"), error);
  // The id can be used again.
  mgr.add_node("node2", test::node("node2"));
  BOOST_CHECK_EQUAL(mgr.query("node2", "SELECT 2")[0].get<int>(0), 2);
  BOOST_CHECK(test::eventually([&] { return rec->count("node2", event::node_added) == 2; }, 5s));
  // The other nodes never noticed.
  BOOST_CHECK_EQUAL(rec->count("node0", event::node_removed), 0u);
  BOOST_CHECK_EQUAL(mgr.query("node0", "SELECT 3")[0].get<int>(0), 3);
}

// The facade sends query() straight to the node's supervisor it learned
// from the manager. A node removed or replaced behind its back (here through
// the actor API) must never be served by the stale route.
BOOST_AUTO_TEST_CASE(node_replaced_behind_the_facade_is_not_served_by_a_stale_route) {
  connection_manager mgr{test::fast_options()};
  mgr.initialize({{"node0", test::node("node0")}, {"nodeX", test::node("node1")}});
  auto port_of = [&](const std::string& id) {
    return mgr.query(id, "SELECT inet_server_port() AS p")[0].get<int>("p");
  };
  BOOST_CHECK_EQUAL(port_of("nodeX"), test::node("node1").port); // route learned
  auto actors = manager_handle(mgr);
  caf::scoped_actor self{mgr.system()};
  auto ask_ok = [&](auto... xs) {
    caf::error failure;
    self->request(actors, 20s, xs...).receive([](ok_atom) {}, [&](caf::error& e) { failure = e; });
    return failure;
  };
  BOOST_REQUIRE(!ask_ok(remove_node_atom::value, std::string{"nodeX"}));
  // The old supervisor is stopping or gone: an error, never a hang, and
  // node_not_found from then on.
  try {
    mgr.query("nodeX", "SELECT 1");
    BOOST_ERROR("query on a removed node succeeded");
  } catch (const pgcm::error& e) {
    BOOST_CHECK_MESSAGE(e.code() == errc::node_not_found || e.code() == errc::shutting_down,
                        e.what());
  }
  BOOST_CHECK_EXCEPTION(mgr.query("nodeX", "SELECT 1"), pgcm::error,
                        [](const pgcm::error& e) { return e.code() == errc::node_not_found; });
  // Same id, another server: queries go there.
  BOOST_REQUIRE(!ask_ok(add_node_atom::value, std::string{"nodeX"}, test::node("node2")));
  BOOST_CHECK_EQUAL(port_of("nodeX"), test::node("node2").port);
  // And through the facade itself.
  mgr.remove_node("nodeX");
  mgr.add_node("nodeX", test::node("node1"));
  BOOST_CHECK_EQUAL(port_of("nodeX"), test::node("node1").port);
  BOOST_CHECK_EQUAL(port_of("node0"), test::node("node0").port);
}

BOOST_AUTO_TEST_CASE(remove_node_lets_an_in_flight_query_finish) {
  connection_manager mgr{test::fast_options()};
  mgr.initialize({{"node0", test::node("node0")}, {"node2", test::node("node2")}});
  std::atomic<int> ok{0};
  std::string failure;
  std::thread th{[&] {
    try {
      auto rs = mgr.query("node2", "SELECT pg_sleep(1), 42 AS n", {}, 10s);
      if (rs[0].get<int>("n") == 42) ++ok;
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }};
  BOOST_CHECK(
      test::eventually([] { return active("node2", "SELECT pg_sleep(1), 42 AS n") == 1; }, 5s));
  auto start = std::chrono::steady_clock::now();
  mgr.remove_node("node2");
  auto took = test::ms_since(start);
  th.join();
  BOOST_CHECK_MESSAGE(ok == 1, "in-flight query failed: " << failure);
  // remove_node waited for it (about the rest of the second), within the bound.
  BOOST_CHECK_GE(took, 300);
  BOOST_CHECK_LT(took, shutdown_bound(mgr.options()));
  BOOST_CHECK(!mgr.has_node("node2"));
  BOOST_CHECK(test::eventually([] { return test::server_connections("node2") == 0; }, 5s));
  BOOST_CHECK_EQUAL(mgr.query("node0", "SELECT 1")[0].get<int>(0), 1);
}

BOOST_AUTO_TEST_SUITE_END()

// -- shutdown -----------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(shutting_down)

BOOST_AUTO_TEST_CASE(hung_queries_are_answered_once_and_shutdown_is_bounded) {
  connection_manager mgr{test::fast_options()};
  // One connection per statement on node0 and node1; on node2 (one
  // connection) the second statement waits behind the first: pipelined on
  // the same connection if it came within the pipelining bound (5 ms), else
  // queued in the supervisor.
  auto nodes = test::all_nodes();
  nodes[0].second.pool.pipeline_depth = 1;
  nodes[1].second.pool.pipeline_depth = 1;
  nodes[2].second.pool.min = 1;
  nodes[2].second.pool.max = 1;
  mgr.initialize(nodes);
  const std::string hang = "SELECT pg_sleep(60)";
  constexpr int calls = 6;
  struct answer {
    std::atomic<int> count{0};
    std::atomic<bool> ok{false};
    std::atomic<int> code{-1};
    std::atomic<long long> at_ms{0};
  };
  std::array<answer, calls> answers;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < calls; ++i)
    threads.emplace_back([&, i] {
      auto node = "node" + std::to_string(i % 3);
      try {
        mgr.query(node, hang, {}, 30s);
        answers[i].ok = true;
      } catch (const error& e) {
        answers[i].code = static_cast<int>(e.code());
      } catch (...) {
        answers[i].code = 1000;
      }
      answers[i].at_ms = test::ms_since(t0);
      ++answers[i].count;
    });
  // Five run on the servers, the sixth waits on node2. (Not a
  // REQUIRE: whatever happens, shutdown must answer the threads.)
  BOOST_CHECK(test::eventually(
      [&] {
        return active("node0", hang) == 2 && active("node1", hang) == 2 &&
               active("node2", hang) == 1;
      },
      10s));
  auto start = std::chrono::steady_clock::now();
  auto start_ms = test::ms_since(t0);
  mgr.shutdown();
  auto took = test::ms_since(start);
  BOOST_TEST_MESSAGE("shutdown with " << calls << " hung queries took " << took << " ms");
  BOOST_CHECK_LT(took, shutdown_bound(mgr.options()));
  for (auto& th : threads)
    th.join();
  for (int i = 0; i < calls; ++i) {
    BOOST_TEST_CONTEXT("call " << i) {
      BOOST_CHECK_EQUAL(answers[i].count.load(), 1);
      BOOST_CHECK(!answers[i].ok);
      auto code = static_cast<errc>(answers[i].code.load());
      BOOST_CHECK_MESSAGE(code == errc::shutting_down || code == errc::query_timeout,
                          "answered with code " << answers[i].code.load());
      // Answered by the shutdown, not by a 30 s timeout or a lost reply.
      BOOST_CHECK_LT(answers[i].at_ms.load(), start_ms + shutdown_bound(mgr.options()));
    }
  }
  // Every connection is closed and no statement of ours runs any more.
  check_all_connections_closed();

  // After shutdown: new requests answer shutting_down.
  auto expect_shutting_down = [](const char* what, auto&& call) {
    try {
      call();
      BOOST_ERROR(what << " succeeded after shutdown");
    } catch (const error& e) {
      BOOST_CHECK_MESSAGE(e.code() == errc::shutting_down,
                          what << " threw " << to_string(e.code()) << ": " << e.what());
    }
  };
  expect_shutting_down("query", [&] { mgr.query("node0", "SELECT 1"); });
  expect_shutting_down("query_all", [&] { mgr.query_all("SELECT 1"); });
  expect_shutting_down("query_healthy", [&] { mgr.query_healthy("SELECT 1"); });
  expect_shutting_down("add_node", [&] { mgr.add_node("node9", test::node("node0")); });
  expect_shutting_down("remove_node", [&] { mgr.remove_node("node0"); });
  expect_shutting_down("initialize", [&] { mgr.initialize({{"x", test::node("node0")}}); });
  // A second shutdown is harmless and quick.
  start = std::chrono::steady_clock::now();
  BOOST_CHECK_NO_THROW(mgr.shutdown());
  BOOST_CHECK_LT(test::ms_since(start), 1000);
}

BOOST_AUTO_TEST_CASE(every_request_gets_exactly_one_reply_at_actor_level) {
  // Plain asynchronous sends (no request ids): every reply the manager's
  // actors send arrives as an ordinary message, so a duplicate would show.
  caf::actor_system_config cfg;
  register_types(cfg);
  use_pgcm_scheduler(cfg);
  caf::actor_system sys{cfg};
  auto opts = test::fast_options();
  auto spawned = spawn_manager(sys, opts);
  BOOST_REQUIRE(spawned);
  auto mgr = *spawned;
  auto small = test::node("node0");
  small.pool.min = 1;
  small.pool.max = 1;
  small.pool.pipeline_depth = 1;
  auto unpipelined = test::node("node1");
  unpipelined.pool.pipeline_depth = 1;
  std::vector<node_entry> nodes{{"node0", small}, {"node1", unpipelined}};
  // Whatever fails below, stop every actor so that ~actor_system returns.
  std::vector<caf::actor> callers;
  struct cleanup {
    manager_api_actor& mgr;
    std::vector<caf::actor>& callers;
    ~cleanup() {
      caf::anon_send(mgr, shutdown_atom::value);
      for (auto& c : callers)
        caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
    }
  } stop_all{mgr, callers};
  {
    caf::scoped_actor self{sys};
    bool ok = false;
    self->request(mgr, 20s, initialize_atom::value, nodes)
        .receive([&](ok_atom) { ok = true; },
                 [&](caf::error& err) { BOOST_ERROR(to_error_info(err).message); });
    BOOST_REQUIRE(ok);
  }
  // node0 (one connection): one running, three waiting for it; node1: two running.
  const std::string hang = "SELECT pg_sleep(60)";
  constexpr int calls = 6;
  struct replies {
    std::atomic<int> values{0};
    std::atomic<int> errors{0};
    std::atomic<int> code{-1};
  };
  auto counts = std::make_shared<std::array<replies, calls>>();
  for (int i = 0; i < calls; ++i) {
    std::string node = i < 4 ? "node0" : "node1";
    callers.push_back(sys.spawn([=](caf::event_based_actor* self) -> caf::behavior {
      self->set_error_handler([=](caf::scheduled_actor*, caf::error& err) {
        ++(*counts)[i].errors;
        (*counts)[i].code = static_cast<int>(to_error_info(err).code);
      });
      self->send(mgr, query_atom::value, node, hang, std::vector<param>{}, caf::timespan{30s});
      return {
          [=](result_set&) { ++(*counts)[i].values; },
      };
    }));
  }
  BOOST_CHECK(
      test::eventually([&] { return active("node0", hang) + active("node1", hang) == 3; }, 10s));
  auto start = std::chrono::steady_clock::now();
  {
    caf::scoped_actor self{sys};
    bool ok = false;
    self->request(mgr, 30s, shutdown_atom::value)
        .receive([&](ok_atom) { ok = true; },
                 [&](caf::error& err) { BOOST_ERROR(to_error_info(err).message); });
    BOOST_CHECK(ok);
  }
  auto took = test::ms_since(start);
  BOOST_CHECK_LT(took, shutdown_bound(opts));
  auto answered = [&] {
    for (auto& c : *counts)
      if (c.values + c.errors < 1) return false;
    return true;
  };
  BOOST_CHECK(test::eventually(answered, 5s));
  // Give a duplicate time to arrive.
  std::this_thread::sleep_for(500ms);
  for (int i = 0; i < calls; ++i) {
    BOOST_TEST_CONTEXT("request " << i) {
      auto& c = (*counts)[i];
      BOOST_CHECK_EQUAL(c.values + c.errors, 1);
      BOOST_CHECK_EQUAL(c.values.load(), 0);
      auto code = static_cast<errc>(c.code.load());
      BOOST_CHECK_MESSAGE(code == errc::shutting_down || code == errc::query_timeout,
                          "answered with code " << c.code.load());
    }
  }
  check_all_connections_closed();
}

BOOST_AUTO_TEST_CASE(shutdown_with_every_node_down_or_hung) {
  auto opts = test::fast_options();
  connection_manager up{opts};
  up.initialize(test::all_nodes());
  BOOST_CHECK_EQUAL(up.query_all("SELECT 1").size(), 3u);
  {
    // Replicas first; the guards start node0 first again.
    test::stopped_node d2{"node2"};
    test::stopped_node d1{"node1"};
    test::stopped_node d0{"node0"};
    // A manager that starts while everything is down.
    connection_manager down{opts};
    auto start = std::chrono::steady_clock::now();
    BOOST_REQUIRE_NO_THROW(down.initialize(test::all_nodes()));
    BOOST_CHECK_LT(test::ms_since(start), 5000);
    BOOST_CHECK(down.get_healthy_nodes().empty());
    start = std::chrono::steady_clock::now();
    auto results = down.query_all("SELECT 1", {}, 10s);
    BOOST_CHECK_LT(test::ms_since(start), 3000);
    BOOST_REQUIRE_EQUAL(results.size(), 3u);
    for (auto& r : results) {
      BOOST_CHECK(!r.success);
      BOOST_CHECK(r.error && r.error->code == errc::connection_failed);
    }
    // The manager that was up sees every node go down.
    BOOST_CHECK(test::eventually([&] { return up.get_healthy_nodes().empty(); }, 10s));

    start = std::chrono::steady_clock::now();
    up.shutdown();
    auto took_up = test::ms_since(start);
    start = std::chrono::steady_clock::now();
    down.shutdown();
    auto took_down = test::ms_since(start);
    BOOST_TEST_MESSAGE("shutdown with all nodes down: " << took_up << " ms and " << took_down
                                                        << " ms");
    BOOST_CHECK_LT(took_up, shutdown_bound(opts));
    BOOST_CHECK_LT(took_down, shutdown_bound(opts));
  }
  // A node that accepts connections but never answers: connection attempts
  // hang until connect_timeout; shutdown does not wait for them.
  silent_server silent;
  auto hung = test::node("node0");
  hung.port = silent.port();
  auto mgr = std::make_unique<connection_manager>(opts);
  auto start = std::chrono::steady_clock::now();
  BOOST_REQUIRE_NO_THROW(mgr->initialize({{"hung", hung}}));
  BOOST_CHECK_LT(test::ms_since(start), opts.connect_timeout.count() +
                                            opts.effective_health_check_timeout().count() + 3000);
  BOOST_CHECK(mgr->get_health("hung")->status == health_state::unhealthy);
  // A request for it while connection attempts hang...
  std::atomic<int> code{-1};
  std::thread th{[&] {
    try {
      mgr->query("hung", "SELECT 1", {}, 30s);
      code = 0;
    } catch (const error& e) {
      code = static_cast<int>(e.code());
    }
  }};
  start = std::chrono::steady_clock::now();
  mgr->shutdown();
  BOOST_CHECK_LT(test::ms_since(start), shutdown_bound(opts));
  th.join();
  // ...and gets one answer that is not success (connection_failed when the
  // attempt timed out first, else shutting_down).
  BOOST_CHECK_NE(code.load(), 0);
  BOOST_CHECK_NE(code.load(), -1);
  start = std::chrono::steady_clock::now();
  mgr.reset(); // the destructor does not hang either
  BOOST_CHECK_LT(test::ms_since(start), shutdown_bound(opts));
}

BOOST_AUTO_TEST_CASE(many_threads_calling_while_shutdown_runs) {
  connection_manager mgr{test::fast_options()};
  mgr.initialize(test::all_nodes());
  test::calls_during_shutdown(mgr);
}

// The manager restarts a node supervisor that died; the dead one's workers
// (monitored by it, not linked) once kept their connections open forever.
BOOST_AUTO_TEST_CASE(crashed_supervisor_restart_leaves_the_pool_size_of_connections) {
  connection_manager mgr{test::fast_options()};
  auto cfg = test::node("node1");
  cfg.pool.min = 2;
  cfg.pool.max = 2;
  mgr.initialize({{"node1", cfg}});
  BOOST_REQUIRE(test::answers(mgr, "node1"));
  // The pool (2) plus the health probe's connection, once steady.
  BOOST_REQUIRE(test::eventually([] { return test::server_connections("node1") == 3; }));
  node_query_actor sup;
  {
    caf::scoped_actor self{mgr.system()};
    self->request(caf::actor_cast<manager_actor>(manager_handle(mgr)), 3s, route_atom::value,
                  std::string{"node1"})
        .receive([&](node_query_actor& x) { sup = std::move(x); },
                 [&](caf::error& err) { BOOST_ERROR(to_error_info(err).message); });
  }
  caf::logger::set_current_actor_system(nullptr); // or ~connection_manager waits for this thread
  BOOST_REQUIRE(sup);
  caf::anon_send_exit(sup, caf::exit_reason::kill); // a crash, as far as the manager can tell
  sup = nullptr;
  // The restarted supervisor serves the node with a pool of its own ...
  BOOST_REQUIRE(test::eventually([&] { return test::answers(mgr, "node1"); }));
  // ... and the old one's connections are gone: back to the pool size.
  BOOST_CHECK(test::eventually([] { return test::server_connections("node1") == 3; }));
  std::this_thread::sleep_for(1s);
  BOOST_CHECK_EQUAL(test::server_connections("node1"), 3);
}

BOOST_AUTO_TEST_CASE(destructor_without_shutdown) {
  auto opts = test::fast_options();
  auto rec = std::make_shared<test::event_recorder>();
  auto mgr = std::make_unique<connection_manager>(opts);
  auto sub = mgr->on(event::node_removed, [rec](const node_event& e) { (*rec)(e); });
  mgr->initialize(test::all_nodes());
  for (auto& r : mgr->query_all("SELECT 1"))
    BOOST_CHECK(r.success);
  BOOST_CHECK_GT(connections_everywhere(), 0);
  auto start = std::chrono::steady_clock::now();
  mgr.reset();
  BOOST_CHECK_LT(test::ms_since(start), shutdown_bound(opts));
  // It shut down: every node removed (events delivered before the end), every connection closed.
  BOOST_CHECK_EQUAL(rec->all().size(), 3u);
  check_all_connections_closed();
  // A subscription outliving its manager is harmless.
  BOOST_CHECK_NO_THROW(sub.unsubscribe());
}

// CAF keeps a reference to its logger in a thread_local of every thread that
// made an actor system or a scoped_actor, and ~actor_system waits for the
// logger to go. A facade used from one thread and destroyed on another, while
// the first lives on, once waited out its whole fallback bound (and forever
// before there was one).
BOOST_AUTO_TEST_CASE(destructor_on_another_thread_while_users_live_on) {
  auto opts = test::fast_options();
  opts.shutdown_timeout = 10s; // the destructor's fallback bound is this + 2 s
  auto mgr = std::make_unique<connection_manager>(opts);
  mgr->initialize({{"node0", test::node("node0")}});
  std::mutex mtx;
  std::condition_variable cv;
  bool used = false, release = false;
  std::thread user{[&] {
    auto rows = mgr->query("node0", "SELECT 1 AS one");
    std::unique_lock<std::mutex> lk{mtx};
    used = rows.size() == 1;
    cv.notify_all();
    cv.wait(lk, [&] { return release; }); // stays alive past the destructor
  }};
  {
    std::unique_lock<std::mutex> lk{mtx};
    BOOST_REQUIRE(cv.wait_for(lk, 30s, [&] { return used; }));
  }
  long long took = -1;
  std::thread destroyer{[&] {
    auto start = std::chrono::steady_clock::now();
    mgr.reset();
    took = test::ms_since(start);
  }};
  destroyer.join();
  {
    std::lock_guard<std::mutex> lk{mtx};
    release = true;
  }
  cv.notify_all();
  user.join();
  // Idle pool, nothing in flight: well under the 12 s fallback.
  BOOST_CHECK_GE(took, 0);
  BOOST_CHECK_LT(took, 5000);
}

// /proc/self/task: the threads of this process.
int thread_count() {
  int n = 0;
  if (auto* dir = opendir("/proc/self/task")) {
    while (auto* e = readdir(dir))
      if (e->d_name[0] != '.') ++n;
    closedir(dir);
  }
  return n;
}

// threading.md I13: the destructor either destroys its actor system on the
// calling thread or leaves it whole; it never leaves a thread behind inside
// ~actor_system. CAF 0.17's ~actor_system waits without a bound for a thread
// that still holds its logger (one that made a scoped_actor in it).
BOOST_AUTO_TEST_CASE(destructor_leaves_no_thread_and_never_half_destroys) {
  auto opts = test::fast_options();
  opts.shutdown_timeout = 1s;
  static std::ostringstream log_text; // alive for the rest of the process, like the logger
  static auto logger = std::make_shared<spdlog::logger>(
      "pgcm-destructor", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text));
  set_logger(logger);
  const int before = thread_count();
  {
    connection_manager mgr{opts};
    mgr.initialize({{"node0", test::node("node0")}});
    BOOST_CHECK(test::answers(mgr, "node0"));
  }
  // Destroyed on this thread: every thread of it is gone, nothing was left behind.
  BOOST_CHECK(test::eventually([&] { return thread_count() == before; }, 3s));
  BOOST_CHECK(log_text.str().find("not destroyed") == std::string::npos);

  auto mgr = std::make_unique<connection_manager>(opts);
  mgr->initialize({{"node0", test::node("node0")}});
  std::mutex mtx;
  std::condition_variable cv;
  bool holding = false, release = false;
  std::thread holder{[&, sys = &mgr->system()] {
    { caf::scoped_actor self{*sys}; } // CAF keeps its logger in this thread's thread_local
    std::unique_lock<std::mutex> lk{mtx};
    holding = true;
    cv.notify_all();
    cv.wait(lk, [&] { return release; });
    caf::logger::set_current_actor_system(nullptr);
  }};
  {
    std::unique_lock<std::mutex> lk{mtx};
    BOOST_REQUIRE(cv.wait_for(lk, 10s, [&] { return holding; }));
  }
  auto start = std::chrono::steady_clock::now();
  mgr.reset();
  // Bounded (shutdown_timeout + 2 s, plus margin) and said why.
  BOOST_CHECK_LT(test::ms_since(start), 1000 + 2000 + 2000);
  BOOST_CHECK(log_text.str().find("actor system not destroyed: a thread that made a "
                                  "caf::scoped_actor") != std::string::npos);
  std::this_thread::sleep_for(300ms); // the manager's own threads have ended
  const int left_whole = thread_count();
  {
    std::lock_guard<std::mutex> lk{mtx};
    release = true;
  }
  cv.notify_all();
  holder.join();
  // The system was left whole: no thread finishes ~actor_system once the
  // holder lets go (its scheduler, clock and middleman threads stay until the
  // process ends; a destroyed system would take them along).
  std::this_thread::sleep_for(500ms);
  BOOST_CHECK_GE(thread_count(), left_whole - 1);
  set_logger(nullptr);
}

BOOST_AUTO_TEST_SUITE_END()

// -- secrets --------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(secrets)

BOOST_AUTO_TEST_CASE(passwords_never_appear_in_errors_events_logs_or_snapshots) {
  const std::string real = cluster::get().password();
  const std::string fake = "Wr0ng-Secret-7f3a9c1e";
  BOOST_REQUIRE(!real.empty());
  // Capture everything pgcm logs. The stream and logger stay alive for the
  // rest of the process: pgcm threads may still hold the logger.
  static std::ostringstream log_text;
  static auto logger = std::make_shared<spdlog::logger>(
      "pgcm-capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text));
  logger->set_level(spdlog::level::trace);
  set_logger(logger);

  std::vector<std::string> texts; // everything pgcm said, except the log
  std::mutex texts_mtx;
  auto keep = [&](std::string s) {
    std::lock_guard<std::mutex> guard{texts_mtx};
    texts.push_back(std::move(s));
  };
  auto describe_node = [](const node_info& n) {
    std::string out = n.id + " " + describe(n.config) + " " + n.config.host + " " + n.config.user +
                      " " + n.config.database + " " + n.config.application_name + " " +
                      n.config.ssl.ca + " " + n.config.password.value_or("") + " " +
                      n.health.last_error.value_or("");
    return out;
  };
  {
    connection_manager mgr{test::fast_options()};
    auto sub = mgr.on_any([&](const node_event& e) {
      std::string s = to_string(e.type) + " " + e.node_id;
      if (e.error) s += " " + e.error->message;
      if (e.health && e.health->last_error) s += " " + *e.health->last_error;
      keep(s);
    });
    auto wrong = test::node("node0");
    wrong.password = fake;
    auto record = [&](auto&& call) {
      try {
        call();
      } catch (const error& e) {
        keep(e.what());
      }
    };
    mgr.initialize(test::all_nodes());
    // A node whose password is wrong: authentication fails.
    mgr.add_node("wrongpw", wrong);
    auto h = mgr.get_health("wrongpw");
    BOOST_REQUIRE(h);
    BOOST_CHECK(h->status == health_state::unhealthy);
    // The first probe's error may be another one (CI, once, right after a
    // test that restarted every node); the next probes say why.
    BOOST_CHECK_MESSAGE(test::eventually(
                            [&] {
                              h = mgr.get_health("wrongpw");
                              return h && h->last_error &&
                                     contains(*h->last_error, "password authentication failed");
                            },
                            5s),
                        "wrongpw: " << (h && h->last_error ? *h->last_error : "no error"));
    if (h && h->last_error) keep(*h->last_error);
    record([&] { mgr.query("wrongpw", "SELECT 1", {}, 3s); });
    for (auto& r : mgr.query_all("SELECT 1", {}, 3s))
      if (r.error) keep(r.error->message);
    // Rejected configs that carry a password.
    auto bad = wrong;
    bad.port = 0;
    record([&] { mgr.add_node("bad", bad); });
    record([&] { mgr.add_node("wrongpw", wrong); });
    record([&] { mgr.initialize({{"x", wrong}, {"x", wrong}}); });
    // Errors, timeouts, snapshots.
    record([&] { mgr.query("node0", "SELECT * FROM no_such_table"); });
    record([&] { mgr.query("node0", "SELECT pg_sleep(5)", {}, 100ms); });
    for (auto& n : mgr.get_nodes()) {
      BOOST_CHECK_MESSAGE(!n.config.password, n.id << ": get_nodes() shows a password");
      keep(describe_node(n));
    }
    auto n0 = mgr.get_node("node0");
    BOOST_REQUIRE(n0);
    BOOST_CHECK(!n0->config.password);
    keep(describe_node(*n0));
    auto wn = mgr.get_node("wrongpw");
    BOOST_REQUIRE(wn);
    BOOST_CHECK(!wn->config.password);
    keep(describe_node(*wn));
    mgr.remove_node("wrongpw");
    mgr.shutdown();
  }
  set_logger(nullptr); // back to the default logger
  auto log = log_text.str();
  BOOST_CHECK(contains(log, "node0")); // the capture worked...
  BOOST_CHECK(contains(log, "wrongpw"));
  BOOST_CHECK(contains(log, "debug") || contains(log, "trace")); // ...at every level
  BOOST_CHECK_MESSAGE(!contains(log, real), "the password appears in the log");
  BOOST_CHECK_MESSAGE(!contains(log, fake), "the wrong password appears in the log");
  BOOST_CHECK_GT(texts.size(), 10u);
  for (auto& t : texts) {
    BOOST_CHECK_MESSAGE(!contains(t, real), "password in: " << t);
    BOOST_CHECK_MESSAGE(!contains(t, fake), "wrong password in: " << t);
  }
}

BOOST_AUTO_TEST_SUITE_END()
