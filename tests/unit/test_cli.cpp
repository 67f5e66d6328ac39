// The pgcm command's pure parts: command line, tables, JSON, the watch view.
#define BOOST_TEST_MODULE test_cli
#include <boost/test/unit_test.hpp>

#include "cli_options.hpp"
#include "json_writer.hpp"
#include "node_json.hpp"
#include "text_table.hpp"
#include "watch_view.hpp"

using namespace pgcm;
using namespace pgcm::cli;
using namespace std::chrono_literals;

namespace {

cli_options parse(std::vector<std::string> args) {
  std::vector<const char*> argv{"pgcm"};
  for (auto& a : args)
    argv.push_back(a.c_str());
  return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

bool usage_fails(std::vector<std::string> args, const std::string& fragment) {
  try {
    parse(std::move(args));
  } catch (const usage_error& e) {
    if (std::string{e.what()}.find(fragment) != std::string::npos) return true;
    BOOST_TEST_MESSAGE("message: " << e.what());
  }
  return false;
}

} // namespace

BOOST_AUTO_TEST_CASE(command_line) {
  auto o = parse({"--config=/etc/pgcm.conf", "query", "--node", "a", "--timeout", "2s", "--json",
                  "SELECT $1, $2", "-5", "--all"});
  BOOST_TEST(o.command == "query");
  BOOST_TEST(o.config_path.value_or("") == "/etc/pgcm.conf");
  BOOST_CHECK(o.target == query_target::node);
  BOOST_TEST(o.target_node == "a");
  BOOST_TEST(o.timeout->count() == 2000);
  BOOST_TEST(o.json);
  BOOST_TEST(o.sql == "SELECT $1, $2");
  // Everything after the SQL is a parameter, even if it looks like a flag.
  BOOST_TEST(o.params == (std::vector<std::string>{"-5", "--all"}),
             boost::test_tools::per_element());

  o = parse({"health", "--node", "p=host=h port=1", "--node=r=postgresql://h/db", "-c", "x.conf"});
  BOOST_TEST(o.node_specs == (std::vector<std::string>{"p=host=h port=1", "r=postgresql://h/db"}),
             boost::test_tools::per_element());
  BOOST_TEST(o.config_path.value_or("") == "x.conf");

  o = parse({"query", "--", "-- a comment\nSELECT 1"});
  BOOST_TEST(o.sql == "-- a comment\nSELECT 1");
  o = parse({"query", "--healthy", "SELECT 1"});
  BOOST_CHECK(o.target == query_target::healthy);
  o = parse({"watch", "--color=never", "--once"});
  BOOST_CHECK(o.color == color_mode::never);
  BOOST_TEST(o.once);
  BOOST_TEST(parse({"help", "demo"}).help);
  BOOST_TEST(parse({"demo", "-h"}).help);

  BOOST_TEST(usage_fails({"query", "--node", "a", "--healthy", "x"}, "exclude each other"));
  BOOST_TEST(
      usage_fails({"health", "--timeout", "1s"}, "--timeout is not supported by pgcm health"));
  BOOST_TEST(usage_fails({"health", "--json=yes"}, "--json takes no value"));
  BOOST_TEST(usage_fails({"watch", "extra"}, "unexpected argument \"extra\""));
  BOOST_TEST(usage_fails({"query", "--timeout", "0", "x"}, "--timeout: invalid duration"));
  BOOST_TEST(usage_fails({"help", "nope"}, "unknown command \"nope\""));
}

BOOST_AUTO_TEST_CASE(serve_http_options) {
  auto o = parse({"serve", "--http", "127.0.0.1:0"});
  BOOST_TEST(o.http.value_or("") == "127.0.0.1:0");
  BOOST_TEST(!o.listen);
  o = parse({"serve", "--http", "[::1]:9187", "--listen", "127.0.0.1:0"});
  BOOST_TEST(o.http.value_or("") == "[::1]:9187");
  // HTTPS alone needs no CA (then no client certificates) ...
  o = parse({"serve", "--http", "0.0.0.0:9187", "--tls-cert", "c.pem", "--tls-key", "k.pem"});
  BOOST_TEST(o.tls_ca.empty());
  // ... but the CAF endpoint beside it does.
  BOOST_TEST(usage_fails({"serve", "--http", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--tls-cert",
                          "c.pem", "--tls-key", "k.pem"},
                         "go together"));
  BOOST_TEST(usage_fails({"serve", "--http", "127.0.0.1:0", "--tls-key", "k.pem"}, "go together"));
  BOOST_TEST(usage_fails({"serve"}, "missing --listen HOST:PORT or --http HOST:PORT"));
  BOOST_TEST(usage_fails({"serve", "--http", "a:1", "--http", "b:2"}, "--http given twice"));
  BOOST_TEST(usage_fails({"health", "--http", "127.0.0.1:0"}, "--http is not supported"));
  BOOST_TEST(help_text("serve").find("--http HOST:PORT") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(event_json_is_one_line) {
  node_event ev;
  ev.type = event::node_health;
  ev.node_id = "n\"1";
  health_status h;
  h.status = health_state::unhealthy;
  h.last_error = "line one\nline two";
  ev.health = h;
  ev.error = error_info{errc::connection_failed, "gone\r\n", std::nullopt};
  auto j = event_json(ev, std::chrono::system_clock::time_point{});
  // One `data:` line of an event stream: a raw newline would end the event.
  BOOST_TEST(j.find('\n') == std::string::npos, j);
  BOOST_TEST(j.find('\r') == std::string::npos, j);
  BOOST_TEST(j.find("\"type\":\"node:health\"") != std::string::npos, j);
  BOOST_TEST(j.find("\"node\":\"n\\\"1\"") != std::string::npos, j);
  BOOST_TEST(j.find("\"status\":\"unhealthy\"") != std::string::npos, j);
  BOOST_TEST(j.find("\"code\":\"connection_failed\"") != std::string::npos, j);
  BOOST_TEST(j.find("\"pool\"") == std::string::npos, j); // no stats in this event
}

BOOST_AUTO_TEST_CASE(psql_like_tables) {
  text_table t;
  t.headers = {"id", "name"};
  t.right_align = {true, false};
  t.rows = {{std::string{"1"}, std::string{"alice"}},
            {std::string{"22"}, std::nullopt},
            {std::string{"3"}, std::string{"two\nlines"}}};
  BOOST_TEST(render(t) == " id | name\n"
                          "----+-------\n"
                          "  1 | alice\n"
                          " 22 |\n"
                          "  3 | two  +\n"
                          "    | lines\n"
                          "(3 rows)\n");
  // Widths count code points; escapes are neutralized.
  BOOST_TEST(display_width("h\xC3\xA9llo") == 5u);
  BOOST_TEST(sanitize("a\x1b[31mb\tc\xff") == "a\\x1b[31mb\\tc\\xff");
  BOOST_TEST(sanitize("\xC2\x9B"
                      "x") == "\\u009bx"); // C1 CSI
}

BOOST_AUTO_TEST_CASE(streamed_tables_keep_the_widths_of_the_first_rows) {
  table_stream t{{"id", "name"}, {true, false}};
  BOOST_TEST(t.begin({{std::string{"1"}, std::string{"alice"}}}) == " id | name\n"
                                                                    "----+-------\n"
                                                                    "  1 | alice\n");
  // Later rows keep those widths; a wider cell overflows its column.
  BOOST_TEST(t.rows({{std::string{"22"}, std::nullopt},
                     {std::string{"12345"}, std::string{"bob"}}}) == " 22 |\n"
                                                                     " 12345 | bob\n");
  BOOST_TEST(table_stream::footer(1) == "(1 row)\n");
  BOOST_TEST(table_stream::footer(2000000) == "(2000000 rows)\n");
}

BOOST_AUTO_TEST_CASE(json_output) {
  json_writer j;
  j.begin_object()
      .key("s")
      .value("q\"\\\n\x01\xC3\xA9")
      .key("bad")
      .value(std::string_view{"\xff\xC3"})
      .key("n")
      .value(std::int64_t{-3})
      .key("b")
      .value(true)
      .key("z")
      .null()
      .key("a")
      .begin_array()
      .value(std::int64_t{1})
      .raw("2")
      .end_array()
      .end_object();
  BOOST_TEST(j.str() ==
             "{\"s\":\"q\\\"\\\\\\n\\u0001\xC3\xA9\",\"bad\":\"\xEF\xBF\xBD\xEF\xBF\xBD\","
             "\"n\":-3,\"b\":true,\"z\":null,\"a\":[1,2]}");
  std::string surrogate;
  append_json_string(surrogate, "\xED\xA0\x80"); // UTF-16 surrogate encoded in UTF-8: invalid
  BOOST_TEST(surrogate == "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
}

BOOST_AUTO_TEST_CASE(sparklines) {
  auto t0 = std::chrono::system_clock::time_point{} + 1h;
  std::vector<latency_sample> h;
  for (int i = 0; i < 4; ++i)
    h.push_back({t0 + std::chrono::seconds{i}, std::chrono::microseconds{100 + 100 * i}, true});
  h.push_back({t0 + 5s, std::chrono::microseconds{0}, false});
  BOOST_TEST(sparkline(h, 10, false) == "_,=#x");
  BOOST_TEST(sparkline(h, 3, false) == "_#x"); // the newest, scaled among themselves
  BOOST_TEST(sparkline(h, 10, true) == "\u2581\u2583\u2585\u2588\u00d7");
  BOOST_TEST(sparkline({}, 10, true).empty());
}

BOOST_AUTO_TEST_CASE(watch_view) {
  watch_model m;
  m.now = std::chrono::system_clock::now();
  node_state n;
  n.info.id = "node0";
  n.info.config.host = "10.0.0.1";
  n.info.config.database = "app";
  n.info.health.status = health_state::healthy;
  n.info.health.role = node_role::primary;
  n.info.health.latency = 420us;
  n.info.health.last_check = m.now;
  n.info.pool.total_connections = 4;
  n.info.pool.idle_connections = 2;
  n.connected = true;
  m.snapshot.nodes.push_back(n);
  n.info.id = "node1\x1b[2J"; // hostile id: shown escaped
  n.info.health.status = health_state::unhealthy;
  n.info.health.role = node_role::standby;
  n.info.health.consecutive_failures = 3;
  n.info.health.last_error = "connection refused\nsecond line";
  m.snapshot.nodes.push_back(n);
  m.slots.node_id = "node0";
  m.slots.fetched = true;
  m.slots.rows.push_back(
      {"node1_slot", "physical", true, "node1", "streaming", "0/3000148", "16 kB", "0.12 ms"});
  view_style s;
  s.width = 100;
  s.unicode = false;
  s.interactive = false;
  auto lines = render_watch(m, s);
  std::string all;
  for (auto& l : lines) {
    BOOST_TEST(display_width(l) <= 100u, l);
    all += l + "\n";
  }
  BOOST_TEST(all.find(" pgcm watch - 2 nodes - 1 healthy - primary node0") != std::string::npos,
             all);
  BOOST_TEST(
      all.find(" * node0         primary  healthy    10.0.0.1:5432/app") != std::string::npos, all);
  BOOST_TEST(all.find("node1\\x1b[2J") != std::string::npos, all);
  BOOST_TEST(all.find('\x1b') == std::string::npos, all); // no colour asked for
  BOOST_TEST(all.find("[##++......] 4/10") != std::string::npos, all);
  BOOST_TEST(all.find("last error  connection refused second line") != std::string::npos, all);
  BOOST_TEST(all.find("failures 3") != std::string::npos, all);
  BOOST_TEST(all.find("   node1_slot  physical  yes     node1   streaming  0/3000148") !=
                 std::string::npos,
             all);

  // A fixed height: exactly that many lines, the rest announced.
  s.height = 8;
  s.color = true;
  lines = render_watch(m, s);
  BOOST_TEST(lines.size() == 8u);
  BOOST_TEST(lines.back().find("more lines") != std::string::npos);
  // Narrow: cut to the width, escapes balanced.
  s.width = 20;
  s.height = 0;
  for (auto& l : render_watch(m, s)) {
    std::string visible;
    for (std::size_t i = 0; i < l.size(); ++i) {
      if (l[i] == '\x1b') {
        i = l.find('m', i);
        continue;
      }
      visible.push_back(l[i]);
    }
    BOOST_TEST(display_width(visible) <= 20u, l);
  }
}
