// Message types: every one registered, serialized and read back unchanged
// (what a remote peer sees); never rendering a password; error mapping.
#define BOOST_TEST_MODULE test_messages
#include <boost/test/unit_test.hpp>

#include <caf/all.hpp>

#include "pgcm/messages/error.hpp"
#include "pgcm/messages/internal_protocol.hpp"

using namespace pgcm;

namespace {

struct system_fixture {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  system_fixture() {
    register_types(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
  }

  template <class T> T round_trip(T x) {
    std::vector<char> buf;
    caf::binary_serializer out{*sys, buf};
    BOOST_REQUIRE(!out(x));
    T y;
    caf::binary_deserializer in{*sys, buf};
    BOOST_REQUIRE(!in(y));
    return y;
  }
};

node_config sample_config() {
  node_config c;
  c.host = "10.0.0.1";
  c.port = 6543;
  c.database = "db";
  c.user = "u";
  c.password = "s3cret-pw";
  c.ssl.enabled = true;
  c.ssl.ca = "/ca.pem";
  c.pool.min = 2;
  c.pool.max = 7;
  return c;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(messages, system_fixture)

BOOST_AUTO_TEST_CASE(node_config_round_trip_keeps_password_but_never_renders_it) {
  auto c = sample_config();
  auto back = round_trip(c);
  BOOST_CHECK_EQUAL(back.host, "10.0.0.1");
  BOOST_CHECK_EQUAL(back.port, 6543);
  BOOST_CHECK_EQUAL(back.password.value_or(""), "s3cret-pw");
  BOOST_CHECK(back.ssl.enabled);
  BOOST_CHECK_EQUAL(back.pool.max, 7);
  auto text = caf::deep_to_string(c);
  BOOST_CHECK(text.find("s3cret-pw") == std::string::npos);
  BOOST_CHECK(text.find("<redacted>") != std::string::npos);
  auto msg = caf::make_message(add_node_atom::value, std::string{"n"}, c);
  BOOST_CHECK(caf::to_string(msg).find("s3cret-pw") == std::string::npos);
  BOOST_CHECK(describe(c).find("s3cret-pw") == std::string::npos);
  BOOST_CHECK(!redacted(c).password);
}

BOOST_AUTO_TEST_CASE(optional_absent_stays_absent) {
  node_config c = sample_config();
  c.password.reset();
  BOOST_CHECK(!round_trip(c).password);
  error_info e{errc::query_failed, "boom", std::nullopt};
  BOOST_CHECK(!round_trip(e).sqlstate);
  e.sqlstate = "42P01";
  BOOST_CHECK_EQUAL(round_trip(e).sqlstate.value_or(""), "42P01");
}

// std::optional fields go through pgcm's own view (no `inspect` in
// namespace std): the bytes are still those of a caf::optional, what a peer
// of the same protocol version sends and expects.
BOOST_AUTO_TEST_CASE(optional_fields_keep_the_wire_format_of_caf_optional) {
  for (std::optional<std::string> sqlstate : {std::optional<std::string>{}, {"42P01"}}) {
    error_info e{errc::query_failed, "boom", sqlstate};
    std::vector<char> ours;
    {
      caf::binary_serializer out{*sys, ours};
      BOOST_REQUIRE(!out(e));
    }
    std::vector<char> expected;
    {
      caf::binary_serializer out{*sys, expected};
      caf::optional<std::string> as_caf;
      if (sqlstate) as_caf = *sqlstate;
      BOOST_REQUIRE(!out(e.code, e.message, as_caf));
    }
    BOOST_CHECK(ours == expected);
  }
  node_event ev;
  ev.type = event::node_disconnected;
  ev.node_id = "n";
  ev.error = error_info{errc::connection_failed, "gone", std::nullopt};
  auto back = round_trip(ev);
  BOOST_CHECK(!back.health);
  BOOST_CHECK(!back.stats);
  BOOST_REQUIRE(back.error);
  BOOST_CHECK_EQUAL(back.error->message, "gone");
}

BOOST_AUTO_TEST_CASE(result_sets_and_node_results) {
  result_set rs{{"a", "b"}, {23, 25}};
  rs.add_row({"1", std::nullopt});
  rs.add_row({"2", "x"});
  rs.set_command("SELECT 2");
  node_result_set nr;
  nr.node_id = "n1";
  nr.success = true;
  nr.data = rs;
  auto back = round_trip(nr);
  BOOST_CHECK(back.data == rs);
  BOOST_CHECK_EQUAL(back.data[1].get<std::string>("b"), "x");
  BOOST_CHECK(back.data[0].is_null(1));
  BOOST_CHECK_EQUAL(back.data.command(), "SELECT 2");
}

BOOST_AUTO_TEST_CASE(inconsistent_result_set_payload_is_rejected) {
  result_set rs{{"a"}, {23}};
  rs.add_row({"12345"});
  rs.raw().ends[0] = 999; // points past the values
  std::vector<char> buf;
  caf::binary_serializer out{*sys, buf};
  BOOST_REQUIRE(!out(rs));
  result_set back;
  caf::binary_deserializer in{*sys, buf};
  BOOST_CHECK(in(back)); // an error
  BOOST_CHECK(back.raw().is_consistent());
}

BOOST_AUTO_TEST_CASE(events_health_and_stats) {
  node_event ev;
  ev.type = event::node_health;
  ev.node_id = "n";
  health_status h;
  h.status = health_state::unhealthy;
  h.latency = std::chrono::microseconds{42};
  h.consecutive_failures = 3;
  h.last_error = "refused";
  h.last_check = std::chrono::system_clock::now();
  h.role = node_role::standby;
  ev.health = h;
  pool_stats s;
  s.node_id = "n";
  s.total_connections = 4;
  s.queries_ok = 99;
  ev.stats = s;
  auto back = round_trip(ev);
  BOOST_CHECK(back.type == event::node_health);
  BOOST_REQUIRE(back.health);
  BOOST_CHECK(*back.health == h);
  BOOST_REQUIRE(back.stats);
  BOOST_CHECK(*back.stats == s);
}

BOOST_AUTO_TEST_CASE(query_job_and_params) {
  query_job j{"SELECT $1, $2, $3", {1, "two", std::nullopt}, 123, 456, 1};
  auto back = round_trip(j);
  BOOST_CHECK_EQUAL(back.sql, j.sql);
  BOOST_REQUIRE_EQUAL(back.params.size(), 3u);
  BOOST_CHECK(back.params[0] == param{1});
  BOOST_CHECK(back.params[2].is_null());
  BOOST_CHECK_EQUAL(back.deadline_ns, 123);
  BOOST_CHECK_EQUAL(back.attempt, 1);
}

BOOST_AUTO_TEST_CASE(errors_map_both_ways) {
  auto err = make_error(errc::query_failed, "node a: query failed: boom", "42P01");
  auto info = to_error_info(err);
  BOOST_CHECK(info.code == errc::query_failed);
  BOOST_CHECK_EQUAL(info.message, "node a: query failed: boom");
  BOOST_CHECK_EQUAL(info.sqlstate.value_or(""), "42P01");
  BOOST_CHECK(to_error_info(to_caf_error(info)).message == info.message);
  auto timeout = to_error_info(caf::make_error(caf::sec::request_timeout), "node b");
  BOOST_CHECK(timeout.code == errc::query_timeout);
  BOOST_CHECK(timeout.message.find("node b") != std::string::npos);
  BOOST_CHECK(timeout.message.find("timeout") != std::string::npos);
  BOOST_CHECK(to_error_info(caf::make_error(caf::sec::request_receiver_down)).code ==
              errc::shutting_down);
  BOOST_CHECK(sys->render(err).find("query_failed") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
