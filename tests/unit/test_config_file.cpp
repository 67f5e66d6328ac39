#define BOOST_TEST_MODULE test_config_file
#include <boost/test/unit_test.hpp>

#include <cstdio>
#include <fstream>
#include <map>
#include <random>

#include <sys/stat.h>
#include <unistd.h>

#include "config_file.hpp"
#include "unit_support.hpp"

using namespace pgcm;
using namespace std::chrono_literals;
using pgcm::test::fake_env;

namespace {

const char* minimal_node = R"(
[node.a]
host = "h"
database = "d"
user = "u"
)";

/// Parses `text` expecting a config_error; checks line and field and that
/// the message contains `fragment`.
void expect_error(const std::string& text, std::size_t line, const std::string& field,
                  const std::string& fragment) {
  BOOST_TEST_CONTEXT("input:\n" << text) {
    try {
      parse_config(text, "test.conf");
      BOOST_FAIL("no error");
    } catch (const config_error& e) {
      BOOST_TEST(e.file() == "test.conf");
      BOOST_TEST(e.line() == line);
      BOOST_TEST(e.field() == field);
      BOOST_TEST(e.message().find(fragment) != std::string::npos, "message: " << e.message());
      BOOST_TEST(std::string{e.what()}.find("test.conf:") == 0, e.what());
    }
  }
}

struct temp_file {
  std::string path;
  explicit temp_file(const std::string& contents, mode_t mode = 0600) {
    char tmpl[] = "/tmp/pgcm-test-XXXXXX";
    int fd = mkstemp(tmpl);
    BOOST_REQUIRE(fd >= 0);
    ::close(fd);
    path = tmpl;
    std::ofstream{path} << contents;
    ::chmod(path.c_str(), mode);
  }
  ~temp_file() { std::remove(path.c_str()); }
};

} // namespace

BOOST_AUTO_TEST_CASE(every_field) {
  auto cfg = parse_config(R"(# pgcm config
[manager]
health_check_interval = "2s"
unhealthy_threshold = 5
shutdown_timeout = 1500
query_timeout = "1m30s"
health_check_timeout = "250ms"
connect_timeout = '3s'
reconnect_backoff_initial = "50ms"
reconnect_backoff_max = "1h"
healthy_threshold = 2
unhealthy_check_interval = "300ms"
primary_wait = "4s"

[node.primary]   # the primary
host = "db1.example.com"
port = 6432
database = "app"
user = "monitor"
password_env = "PG_PASSWORD"
application_name = "my app"
ssl.enabled = true
ssl.reject_unauthorized = false
ssl.ca = "/etc/ca.crt"
pool.min = 2
pool.max = 20
pool.pipeline_depth = 1
pool.max_waiting = 1_000
pool.statement_cache = 0

[node."replica.1"]
host = "db2"
database = "app"
user = "monitor"
passfile = "pgpass"

[node."replica.1".pool]
max = 4
)",
                          "/etc/pgcm/pgcm.conf");
  BOOST_TEST(cfg.manager.health_check_interval.count() == 2000);
  BOOST_TEST(cfg.manager.unhealthy_threshold == 5);
  BOOST_TEST(cfg.manager.shutdown_timeout.count() == 1500);
  BOOST_TEST(cfg.manager.query_timeout.count() == 90000);
  BOOST_TEST(cfg.manager.health_check_timeout.count() == 250);
  BOOST_TEST(cfg.manager.connect_timeout.count() == 3000);
  BOOST_TEST(cfg.manager.reconnect_backoff_initial.count() == 50);
  BOOST_TEST(cfg.manager.reconnect_backoff_max.count() == 3600000);
  BOOST_TEST(cfg.manager.healthy_threshold == 2);
  BOOST_TEST(cfg.manager.unhealthy_check_interval.count() == 300);
  BOOST_TEST(cfg.manager.primary_wait.count() == 4000);
  BOOST_TEST(cfg.manager_lines.at("unhealthy_threshold") == 4u);
  BOOST_REQUIRE(cfg.nodes.size() == 2u);
  auto& p = cfg.nodes[0];
  BOOST_TEST(p.id == "primary");
  BOOST_TEST(p.line == 15u);
  BOOST_TEST(p.config.host == "db1.example.com");
  BOOST_TEST(p.config.port == 6432);
  BOOST_TEST(p.config.database == "app");
  BOOST_TEST(p.config.user == "monitor");
  BOOST_TEST(!p.config.password);
  BOOST_TEST(p.password.type == password_source::kind::env);
  BOOST_TEST(p.password.value == "PG_PASSWORD");
  BOOST_TEST(p.config.application_name == "my app");
  BOOST_TEST(p.config.ssl.enabled);
  BOOST_TEST(!p.config.ssl.reject_unauthorized);
  BOOST_TEST(p.config.ssl.ca == "/etc/ca.crt");
  BOOST_TEST(p.config.pool.min == 2);
  BOOST_TEST(p.config.pool.max == 20);
  BOOST_TEST(p.config.pool.pipeline_depth == 1);
  BOOST_TEST(p.config.pool.max_waiting == 1000);
  BOOST_TEST(p.config.pool.statement_cache == 0);
  BOOST_TEST(p.lines.at("pool.max") == 26u);
  auto& r = cfg.nodes[1];
  BOOST_TEST(r.id == "replica.1");
  BOOST_TEST(r.config.port == 5432);
  BOOST_TEST(r.config.pool.max == 4);
  BOOST_TEST(r.config.pool.min == 1);
  // Relative paths are anchored at the config file's directory.
  BOOST_TEST(r.password.type == password_source::kind::passfile);
  BOOST_TEST(r.password.value == "/etc/pgcm/pgpass");
}

BOOST_AUTO_TEST_CASE(defaults_and_empty_input) {
  auto cfg = parse_config("", "x");
  BOOST_TEST(cfg.nodes.empty());
  BOOST_TEST(cfg.manager.health_check_interval.count() ==
             manager_options{}.health_check_interval.count());
  cfg = parse_config("\xEF\xBB\xBF# only a comment\r\n\r\n[manager]\r\n", "x");
  BOOST_TEST(cfg.nodes.empty());
  cfg = parse_config(minimal_node, "x");
  BOOST_REQUIRE(cfg.nodes.size() == 1u);
  BOOST_TEST(cfg.nodes[0].config.pool.max == pool_config{}.max);
  BOOST_TEST(cfg.nodes[0].config.application_name == "pgcm");
  BOOST_TEST(cfg.nodes[0].password.type == password_source::kind::none);
}

BOOST_AUTO_TEST_CASE(strings_and_escapes) {
  auto cfg = parse_config(R"([node.a]
host = "tab\there \"q\" \\ \u00e9 \U0001F600"
database = 'C:\path\no escapes'
user = "u" # trailing comment with "quotes"
)",
                          "x");
  BOOST_TEST(cfg.nodes[0].config.host == "tab\there \"q\" \\ \xC3\xA9 \xF0\x9F\x98\x80");
  BOOST_TEST(cfg.nodes[0].config.database == "C:\\path\\no escapes");
  BOOST_TEST(cfg.nodes[0].config.user == "u");
}

// The parser is toml++: the whole TOML language is accepted, not only the
// `key = value` lines pgcm's own files use.
BOOST_AUTO_TEST_CASE(full_toml_syntax) {
  auto cfg = parse_config(R"(
node.zeta.host = "z"               # dotted keys at the top level
node.zeta.database = "d"
node.zeta.user = "u"

[node.beta.pool]                   # a subsection before its node's own header
max = 0x10                         # hex integer

[manager]
query_timeout = """
1m30s"""
unhealthy_threshold = +4

[node.beta]
host = '''literal
host'''
database = "d"
user = "u"
ssl = { enabled = true, reject_unauthorized = false }
"port" = 0o17_000                  # quoted key, octal integer

[node."alpha"]
host = "a"
database = "d"
user = "u"
pool = { min = 0, max = 3 }
)",
                          "x");
  BOOST_TEST(cfg.manager.query_timeout.count() == 90000);
  BOOST_TEST(cfg.manager.unhealthy_threshold == 4);
  BOOST_TEST(cfg.manager_lines.at("query_timeout") == 10u);
  BOOST_REQUIRE(cfg.nodes.size() == 3u);
  // File order (where each node first appears), not toml++'s key order.
  BOOST_TEST(cfg.nodes[0].id == "zeta");
  BOOST_TEST(cfg.nodes[1].id == "beta");
  BOOST_TEST(cfg.nodes[2].id == "alpha");
  BOOST_TEST(cfg.nodes[0].config.host == "z");
  BOOST_TEST(cfg.nodes[0].lines.at("user") == 4u);
  auto& b = cfg.nodes[1];
  BOOST_TEST(b.config.host == "literal\nhost");
  BOOST_TEST(b.config.pool.max == 16);
  BOOST_TEST(b.lines.at("pool.max") == 7u);
  BOOST_TEST(b.config.ssl.enabled);
  BOOST_TEST(!b.config.ssl.reject_unauthorized);
  BOOST_TEST(b.lines.at("ssl.enabled") == 19u);
  BOOST_TEST(b.config.port == 7680);
  auto& a = cfg.nodes[2];
  BOOST_TEST(a.line == 22u);
  BOOST_TEST(a.config.pool.min == 0);
  BOOST_TEST(a.config.pool.max == 3);
}

BOOST_AUTO_TEST_CASE(errors_name_line_and_field) {
  expect_error("[manager]\nhealth_check_interval = \"5 s\"\n", 2, "health_check_interval",
               "invalid duration");
  expect_error("[manager]\nhealth_check_interval = 0\n", 2, "health_check_interval",
               "greater than 0");
  expect_error("[manager]\nshutdown_timeout = -1\n", 2, "shutdown_timeout", "negative");
  expect_error("[manager]\nunhealthy_threshold = \"3\"\n", 2, "unhealthy_threshold",
               "must be an integer");
  expect_error("[manager]\nunhealthy_threshold = 99999999999\n", 2, "unhealthy_threshold",
               "from 1 to");
  expect_error("[manager]\nquery_timeout = \"99999999h\"\n", 2, "query_timeout",
               "invalid duration");
  expect_error("[manager]\nbogus = 1\n", 2, "bogus", "unknown field in [manager]");
  expect_error("[manager]\n[manager]\n", 2, "", "cannot redefine existing table 'manager'");
  expect_error("host = \"x\"\n", 1, "host", "outside a section");
  expect_error("[nodes.a]\n", 1, "nodes", "unknown section [nodes]");
  expect_error("[manager.x]\n", 1, "manager.x", "no subsections");
  expect_error("[node]\nhost = \"h\"\n", 2, "node", "needs an id");
  expect_error("[node]\n", 1, "node", "needs an id");
  expect_error("[node.a.tls]\n", 1, "node.a.tls", "subsections are ssl and pool");
  expect_error("[node.\"a b\"]\n", 1, "node.a b", "invalid node id");
  expect_error("[node.a\n", 1, "", "expected ']'");
  // toml++ 3.3.0 asserted on these (tests/fuzz/corpus/config_file/toml-assert-*).
  expect_error("[~ode.a]\n", 1, "", "expected bare key starting character");
  expect_error("[node.a]\nx = 1\n[[ ~a]]\n", 3, "", "expected bare key starting character");
  expect_error("\xCA\x89\n", 1, "", "expected keys, tables"); // U+0289: toml++ issue #295
  expect_error("[node.a]\nx = 1 \xC2\xA7\n", 2, "x", "saw");  // U+00A7
  expect_error("[[node.a]]\n", 1, "node.a", "arrays of tables");
  expect_error("[[manager]]\n", 1, "manager", "arrays of tables");
  expect_error("[node.a] x\n", 1, "", "saw 'x'");
  expect_error("[node.a]\nhost = \"h\"\nhots = \"h\"\n", 3, "hots", "unknown field");
  expect_error("[node.a]\nssl.enable = true\n", 2, "ssl.enable", "known ssl fields: enabled");
  expect_error("[node.a.pool]\nmaximum = 3\n", 2, "pool.maximum", "known pool fields");
  expect_error("[node.a]\nport = 70000\n", 2, "port", "1 to 65535");
  expect_error("[node.a]\nport = \"5432\"\n", 2, "port", "1 to 65535");
  expect_error("[node.a]\nhost = h\n", 2, "host", "strings need quotes");
  expect_error("[node.a]\nhost = \"h\n", 2, "host", "control characters");
  expect_error("[node.a]\nhost = \"a\\u0000b\"\n", 2, "host", "NUL");
  expect_error("[node.a]\nhost = \"\\ud800\"\n", 2, "host", "surrogates");
  expect_error("[node.a]\nhost = \"\\x41\"\n", 2, "host", "escape sequence '\\x'");
  expect_error("[node.a]\nhost = \"\"\n", 2, "host", "must not be empty");
  expect_error("[node.a]\nhost = \"h\"\nhost = \"i\"\n", 3, "host", "cannot redefine");
  expect_error("[node.a]\nssl = 1\n", 2, "ssl", "is a group of fields");
  expect_error("[node.a]\nssl = { enable = true }\n", 2, "ssl.enable", "known ssl fields");
  expect_error("[node.a]\npool.max = 2.0\n", 2, "pool.max", "got a float");
  expect_error("[node.a]\nport = [5432]\n", 2, "port", "1 to 65535");
  expect_error("[node.a]\nhost = 1979-05-27\n", 2, "host", "got a date");
  expect_error("[manager]\nquery_timeout = 1.5\n", 2, "query_timeout", "got a float");
  expect_error("[node.a.ssl]\nca = 1\n", 2, "ssl.ca", "must be a string");
  expect_error("[node.a]\nssl.enabled = \"yes\"\n", 2, "ssl.enabled", "true or false");
  expect_error("[node.a]\npool.min = -1\n", 2, "pool.min", "from 0 to");
  expect_error("[node.a]\npool.max = 0\n", 2, "pool.max", "from 1 to");
  expect_error("[node.a]\nhost =\n", 2, "host", "expected value");
  expect_error("[node.a]\nhost \"h\"\n", 2, "host", "expected '='");
  expect_error("[node.a]\nhost = \"h\"\n[node.b]\nhost = \"h\"\ndatabase = \"d\"\nuser = 1\n"
               "[node.a.tls]\n",
               6, "user", "must be a string");
  expect_error("[node.a]\npassword_env = \"1X\"\n", 2, "password_env", "environment variable");
  expect_error("[node.a]\npassword_env = \"X\"\npassfile = \"/p\"\n", 3, "passfile",
               "only one of password, password_env and passfile");
  expect_error("[node.a]\nhost = \"h\"\ndatabase = \"d\"\n", 1, "user", "missing");
  expect_error("[node.a]\nhost = \"h\" \x01\n", 2, "host", "saw '\\u0001'");
}

BOOST_AUTO_TEST_CASE(password_value_never_in_messages) {
  try {
    parse_config("[node.a]\npassword = s3cr3t-value\n", "x");
    BOOST_FAIL("no error");
  } catch (const config_error& e) {
    BOOST_TEST(std::string{e.what()}.find("s3cr3t") == std::string::npos, e.what());
    BOOST_TEST(e.field() == "password");
  }
}

BOOST_AUTO_TEST_CASE(resolve_env_and_validation) {
  auto cfg = parse_config(std::string{minimal_node} + "password_env = \"PW\"\n", "c.conf");
  auto nodes = resolve_nodes(cfg, fake_env({{"PW", "secret"}}));
  BOOST_REQUIRE(nodes.size() == 1u);
  BOOST_TEST(nodes[0].first == "a");
  BOOST_TEST(nodes[0].second.password.value_or("") == "secret");

  try {
    resolve_nodes(cfg, fake_env({}));
    BOOST_FAIL("no error");
  } catch (const config_error& e) {
    BOOST_TEST(e.line() == 6u);
    BOOST_TEST(e.field() == "password_env");
    BOOST_TEST(e.message() == "environment variable PW is not set");
  }

  // Cross-field rules come from pgcm::validate, pointed at the field's line.
  cfg = parse_config(std::string{minimal_node} + "pool.min = 5\npool.max = 2\n", "c.conf");
  try {
    resolve_nodes(cfg, fake_env({}));
    BOOST_FAIL("no error");
  } catch (const config_error& e) {
    BOOST_TEST(e.line() == 6u);
    BOOST_TEST(e.field() == "pool.min");
    BOOST_TEST(e.message().find("must not exceed pool.max") != std::string::npos);
  }
  cfg = parse_config(std::string{minimal_node} + "ssl.enabled = true\n", "c.conf");
  try {
    resolve_nodes(cfg, fake_env({}));
    BOOST_FAIL("no error");
  } catch (const config_error& e) {
    BOOST_TEST(e.field() == "ssl.ca");
    BOOST_TEST(e.line() == 2u); // not set: the node's section line
  }
  cfg = parse_config(
      "[manager]\nreconnect_backoff_initial = \"2s\"\nreconnect_backoff_max = \"1s\"\n", "c.conf");
  try {
    resolve_nodes(cfg, fake_env({}));
    BOOST_FAIL("no error");
  } catch (const config_error& e) {
    BOOST_TEST(e.field() == "reconnect_backoff_max");
    BOOST_TEST(e.line() == 3u);
  }
}

BOOST_AUTO_TEST_CASE(resolve_passfile) {
  temp_file pass{"# comment\nother:*:*:*:nope\nh:5432:d:u:pa\\:ss\n*:*:*:*:fallback\n"};
  auto cfg = parse_config(std::string{minimal_node} + "passfile = \"" + pass.path + "\"\n", "c");
  auto nodes = resolve_nodes(cfg, fake_env({}));
  BOOST_TEST(nodes[0].second.password.value_or("") == "pa:ss");

  temp_file open_file{"*:*:*:*:x\n", 0644};
  cfg = parse_config(std::string{minimal_node} + "passfile = \"" + open_file.path + "\"\n", "c");
  BOOST_CHECK_EXCEPTION(resolve_nodes(cfg, fake_env({})), config_error, [](const config_error& e) {
    return e.field() == "passfile" &&
           e.message().find("group or world access") != std::string::npos;
  });
  temp_file no_match{"x:1:y:z:pw\n"};
  cfg = parse_config(std::string{minimal_node} + "passfile = \"" + no_match.path + "\"\n", "c");
  BOOST_CHECK_EXCEPTION(resolve_nodes(cfg, fake_env({})), config_error, [](const config_error& e) {
    return e.message().find("no line matching h:5432:d:u") != std::string::npos;
  });
  cfg = parse_config(std::string{minimal_node} + "passfile = \"/nonexistent/pgpass\"\n", "c");
  BOOST_CHECK_EXCEPTION(resolve_nodes(cfg, fake_env({})), config_error, [](const config_error& e) {
    return e.line() == 6 && e.message().find("cannot be read") != std::string::npos;
  });
}

BOOST_AUTO_TEST_CASE(the_example_file) {
  auto cfg = read_config_file(PGCM_EXAMPLE_CONFIG);
  BOOST_REQUIRE(cfg.nodes.size() == 2u);
  BOOST_TEST(cfg.nodes[1].id == "replica-1");
  BOOST_TEST(cfg.nodes[1].config.port == 5433);
  BOOST_TEST(cfg.manager.health_check_timeout.count() == 2000);
  auto nodes = resolve_nodes(cfg, fake_env({{"PG_PASSWORD", "pw"}}));
  BOOST_TEST(nodes[0].second.password.value_or("") == "pw");
}

BOOST_AUTO_TEST_CASE(read_missing_file) {
  BOOST_CHECK_EXCEPTION(read_config_file("/nonexistent/pgcm.conf"), config_error,
                        [](const config_error& e) {
                          return e.line() == 0 && e.file() == "/nonexistent/pgcm.conf" &&
                                 std::string{e.what()}.find("cannot read") != std::string::npos;
                        });
}

BOOST_AUTO_TEST_CASE(node_ids) {
  BOOST_TEST(valid_node_id("node-1_a.b"));
  BOOST_TEST(!valid_node_id(""));
  BOOST_TEST(!valid_node_id("a=b"));
  BOOST_TEST(!valid_node_id("a b"));
  BOOST_TEST(!valid_node_id(std::string(64, 'a')));
}

// Arbitrary bytes either parse or throw config_error: nothing else, no crash
// (a quick stand-in for the fuzzer).
BOOST_AUTO_TEST_CASE(random_input_never_crashes) {
  std::mt19937 rng{12345};
  const std::string seed = std::string{"[manager]\nquery_timeout = \"5s\"\n"} + minimal_node +
                           "ssl.ca = \"x\\u00e9\"\n[node.b.pool]\nmax = 1_0\n";
  const std::string alphabet = "[]=\"'.#\\\n\r\t {}_-0123456789abcdefghnopstu";
  for (int i = 0; i < 20000; ++i) {
    std::string text = seed;
    test::random_edits(text, rng, alphabet, 8, 4, true);
    try {
      parse_config(text, "fuzz");
    } catch (const config_error&) {
    }
  }
}
