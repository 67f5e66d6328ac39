// Bad input to every entry point, as a table: each row gets a clear error
// naming what is wrong (code and a fragment of the message), none crashes or
// hangs. Remote-protocol and TLS-file rows live in test_remote.cpp.
#define BOOST_TEST_MODULE test_bad_input
#include <boost/test/unit_test.hpp>

#include <functional>

#include "config_file.hpp"
#include "conninfo.hpp"
#include "fixture.hpp"

using namespace std::chrono_literals;
using namespace pgcm;

namespace {

struct row_case {
  const char* name;
  std::function<void()> call;
  std::optional<errc> code; // nullopt: a parser's own exception type
  std::string fragment;     // must appear in the message
};

void run_table(const std::vector<row_case>& rows) {
  for (auto& r : rows) {
    BOOST_TEST_CONTEXT(r.name) {
      try {
        r.call();
        BOOST_ERROR("no error");
      } catch (const error& e) {
        BOOST_CHECK(r.code.has_value());
        if (r.code) BOOST_CHECK_EQUAL(to_string(e.code()), to_string(*r.code));
        BOOST_CHECK_MESSAGE(std::string{e.what()}.find(r.fragment) != std::string::npos,
                            "'" << r.fragment << "' not in: " << e.what());
      } catch (const std::runtime_error& e) { // config_error, conninfo_error
        BOOST_CHECK(!r.code.has_value());
        BOOST_CHECK_MESSAGE(std::string{e.what()}.find(r.fragment) != std::string::npos,
                            "'" << r.fragment << "' not in: " << e.what());
      }
    }
  }
}

node_config with(std::function<void(node_config&)> f) {
  auto cfg = test::node("node0");
  f(cfg);
  return cfg;
}

manager_options opts_with(std::function<void(manager_options&)> f) {
  auto o = test::fast_options();
  f(o);
  return o;
}

std::vector<std::pair<std::string, node_config>> from_file(const std::string& text) {
  env_lookup env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "SET_VAR") return std::string{"pw"};
    return std::nullopt;
  };
  return resolve_nodes(parse_config(text, "/etc/pgcm/test.conf"), env);
}

} // namespace

BOOST_AUTO_TEST_CASE(node_config_fields_and_manager_options) {
  connection_manager mgr{test::fast_options()};
  auto init = [&](node_config cfg) { return [&mgr, cfg] { mgr.initialize({{"n1", cfg}}); }; };
  run_table({
      {"empty host", init(with([](node_config& c) { c.host.clear(); })), errc::invalid_config,
       "\"n1\": host"},
      {"port 0", init(with([](node_config& c) { c.port = 0; })), errc::invalid_config, "port"},
      {"empty database", init(with([](node_config& c) { c.database.clear(); })),
       errc::invalid_config, "database"},
      {"empty user", init(with([](node_config& c) { c.user.clear(); })), errc::invalid_config,
       "user"},
      {"NUL in host", init(with([](node_config& c) {
         c.host = std::string{"a\0b", 3};
       })),
       errc::invalid_config, "NUL"},
      {"pool.min < 0", init(with([](node_config& c) { c.pool.min = -1; })), errc::invalid_config,
       "pool.min"},
      {"pool.max 0", init(with([](node_config& c) {
         c.pool.max = 0;
         c.pool.min = 0;
       })),
       errc::invalid_config, "pool.max"},
      {"pool.min > pool.max", init(with([](node_config& c) {
         c.pool.min = 5;
         c.pool.max = 2;
       })),
       errc::invalid_config, "pool.min"},
      {"pipeline_depth 0", init(with([](node_config& c) { c.pool.pipeline_depth = 0; })),
       errc::invalid_config, "pool.pipeline_depth"},
      {"ssl without ca", init(with([](node_config& c) { c.ssl.enabled = true; })),
       errc::invalid_config, "ssl.ca"},
      {"ssl ca unreadable", init(with([](node_config& c) {
         c.ssl.enabled = true;
         c.ssl.ca = "/nope/ca.pem";
       })),
       errc::invalid_config, "/nope/ca.pem"},
      {"empty id",
       [&] {
         mgr.initialize({{"", test::node("node0")}});
       },
       errc::invalid_config, "node id"},
      {"duplicate id",
       [&] {
         mgr.initialize({{"a", test::node("node0")}, {"a", test::node("node1")}});
       },
       errc::duplicate_node, "\"a\""},
      {"interval 0",
       [] {
         connection_manager m{opts_with([](manager_options& o) { o.health_check_interval = 0ms; })};
       },
       errc::invalid_config, "health_check_interval"},
      {"threshold 0",
       [] {
         connection_manager m{opts_with([](manager_options& o) { o.unhealthy_threshold = 0; })};
       },
       errc::invalid_config, "unhealthy_threshold"},
      {"query_timeout 0",
       [] { connection_manager m{opts_with([](manager_options& o) { o.query_timeout = 0ms; })}; },
       errc::invalid_config, "query_timeout"},
      {"backoff max < initial",
       [] {
         connection_manager m{opts_with([](manager_options& o) { o.reconnect_backoff_max = 1ms; })};
       },
       errc::invalid_config, "reconnect_backoff_max"},
  });
  BOOST_CHECK(mgr.get_nodes().empty());
}

BOOST_AUTO_TEST_CASE(config_file_and_node_flags) {
  run_table({
      {"unknown key",
       [] {
         from_file("[node.a]\nhost = \"h\"\ndatabase = \"d\"\nuser = \"u\"\ncolour = \"red\"\n");
       },
       std::nullopt, ":5"},
      {"bad duration", [] { from_file("[manager]\nhealth_check_interval = \"soon\"\n"); },
       std::nullopt, "health_check_interval"},
      {"bad port",
       [] { from_file("[node.a]\nhost = \"h\"\nport = 70000\ndatabase = \"d\"\nuser = \"u\"\n"); },
       std::nullopt, "port"},
      {"unterminated string", [] { from_file("[node.a]\nhost = \"h\n"); }, std::nullopt, ":2"},
      {"missing password variable",
       [] {
         from_file("[node.a]\nhost = \"h\"\ndatabase = \"d\"\nuser = \"u\"\npassword_env = "
                   "\"UNSET_VAR\"\n");
       },
       std::nullopt, "UNSET_VAR"},
      {"node fields validated",
       [] {
         from_file("[node.a]\nhost = \"h\"\ndatabase = \"d\"\nuser = \"u\"\npool.min = 9\npool.max "
                   "= 2\n");
       },
       std::nullopt, "pool.min"},
      {"conninfo syntax", [] { parse_conninfo("host=a port", process_env()); }, std::nullopt, ""},
      {"conninfo unknown keyword", [] { parse_conninfo("host=a colour=red", process_env()); },
       std::nullopt, "colour"},
      {"conninfo bad URI", [] { parse_conninfo("postgresql://[::1", process_env()); }, std::nullopt,
       ""},
  });
}

BOOST_AUTO_TEST_CASE(sql_parameters_and_conversions) {
  connection_manager mgr{test::fast_options()};
  mgr.initialize({{"node0", test::node("node0")}});
  auto q = [&](std::string sql, std::vector<param> ps = {}) {
    return [&mgr, sql, ps] { mgr.query("node0", sql, ps); };
  };
  auto get = [&](std::string sql, std::function<void(const row&)> f) {
    return [&mgr, sql, f] { f(mgr.query("node0", sql)[0]); };
  };
  run_table({
      {"syntax error", q("SELEC 1"), errc::query_failed, "syntax error"},
      {"unknown table", q("SELECT * FROM no_such_table_x"), errc::query_failed, "no_such_table_x"},
      {"division by zero", q("SELECT 1 / (random() * 0)::int"), errc::query_failed,
       "division by zero"},
      {"too many parameters", q("SELECT $1::int", {1, 2}), errc::query_failed, "node0"},
      {"too few parameters", q("SELECT $1::int + $2::int", {1}), errc::query_failed, "node0"},
      {"parameter of the wrong type", q("SELECT $1::int", {"abc"}), errc::query_failed, "abc"},
      {"two statements", q("SELECT 1; SELECT 2"), errc::query_failed, "multiple commands"},
      {"unknown node", [&] { mgr.query("nope", "SELECT 1"); }, errc::node_not_found, "not found"},
      {"timeout 0", [&] { mgr.query("node0", "SELECT 1", {}, 0ms); }, errc::invalid_argument,
       "timeout"},
      {"unknown column", get("SELECT 1 AS a", [](const row& r) { r.get<int>("b"); }),
       errc::column_not_found, "\"b\""},
      {"column index", get("SELECT 1 AS a", [](const row& r) { r.get<int>(3); }),
       errc::column_not_found, "3"},
      {"NULL into int", get("SELECT NULL::int AS n", [](const row& r) { r.get<int32_t>("n"); }),
       errc::conversion_failed, "\"n\""},
      {"not a bool", get("SELECT 'maybe' AS b", [](const row& r) { r.get<bool>("b"); }),
       errc::conversion_failed, "maybe"},
      {"int16 overflow", get("SELECT 70000 AS n", [](const row& r) { r.get<int16_t>("n"); }),
       errc::conversion_failed, "70000"},
      {"not a number", get("SELECT 'x1' AS d", [](const row& r) { r.get<double>("d"); }),
       errc::conversion_failed, "x1"},
  });
  // The connection survived all of it.
  BOOST_CHECK_EQUAL(mgr.query("node0", "SELECT 1")[0].get<int>(0), 1);
  BOOST_CHECK_EQUAL(mgr.get_pool_stats("node0")->connections_discarded, 0);
}
