// TLS to PostgreSQL (the test cluster runs with ssl=on and a certificate for
// 127.0.0.1 / localhost from a test CA): verify-full connects, another CA or a
// wrong host name is refused, a missing CA is a config error.
#define BOOST_TEST_MODULE test_security
#include <boost/test/unit_test.hpp>

#include "fault_proxy.hpp"
#include "fixture.hpp"

using namespace std::chrono_literals;
using namespace pgcm;
using pgcm::test::cluster;

namespace {

node_config tls_node(const std::string& ca) {
  auto cfg = test::node("node0");
  cfg.ssl.enabled = true;
  cfg.ssl.reject_unauthorized = true;
  cfg.ssl.ca = ca;
  return cfg;
}

} // namespace

BOOST_AUTO_TEST_CASE(verify_full_with_the_right_ca_connects_over_tls) {
  auto ca = cluster::get().value("PGCM_TEST_CA");
  BOOST_REQUIRE_MESSAGE(!ca.empty(), "the test cluster runs without --tls");
  connection_manager mgr{test::fast_options()};
  mgr.initialize({{"tls", tls_node(ca)}});
  BOOST_CHECK(mgr.get_health("tls")->status == health_state::healthy);
  auto rs = mgr.query("tls", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
  BOOST_CHECK_EQUAL(rs[0].get<bool>(0), true);
}

BOOST_AUTO_TEST_CASE(a_server_certificate_from_another_ca_is_refused) {
  auto other = cluster::get().value("PGCM_TEST_OTHER_CA");
  BOOST_REQUIRE(!other.empty());
  connection_manager mgr{test::fast_options()};
  mgr.initialize({{"tls", tls_node(other)}});
  auto h = mgr.get_health("tls");
  BOOST_CHECK(h->status == health_state::unhealthy);
  BOOST_CHECK(h->last_error.value_or("").find("certificate verify failed") != std::string::npos);
  BOOST_CHECK_THROW(mgr.query("tls", "SELECT 1"), error);
}

BOOST_AUTO_TEST_CASE(a_wrong_host_name_is_refused) {
  // Same server, reached as 127.0.0.2 (not in its certificate).
  test::fault_proxy proxy{cluster::get().port("node0"), "127.0.0.2"};
  auto cfg = tls_node(cluster::get().value("PGCM_TEST_CA"));
  cfg.host = "127.0.0.2";
  cfg.port = proxy.port();
  connection_manager mgr{test::fast_options()};
  mgr.initialize({{"tls", cfg}});
  auto h = mgr.get_health("tls");
  BOOST_CHECK(h->status == health_state::unhealthy);
  BOOST_CHECK_MESSAGE(h->last_error.value_or("").find("does not match host name") !=
                          std::string::npos,
                      h->last_error.value_or(""));
  // Without verification (reject_unauthorized = false) the same path works.
  cfg.ssl.reject_unauthorized = false;
  mgr.add_node("unverified", cfg);
  BOOST_CHECK_EQUAL(mgr.query("unverified", "SELECT 1")[0].get<int>(0), 1);
}

BOOST_AUTO_TEST_CASE(missing_ca_is_a_config_error) {
  connection_manager mgr{test::fast_options()};
  auto cfg = tls_node("");
  try {
    mgr.initialize({{"tls", cfg}});
    BOOST_FAIL("accepted ssl without a CA");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::invalid_config);
    BOOST_CHECK(std::string{e.what()}.find("ssl.ca") != std::string::npos);
    BOOST_CHECK(std::string{e.what()}.find("\"tls\"") != std::string::npos);
  }
  cfg.ssl.ca = "/nonexistent/ca.pem";
  try {
    mgr.initialize({{"tls", cfg}});
    BOOST_FAIL("accepted a missing CA file");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::invalid_config);
    BOOST_CHECK(std::string{e.what()}.find("/nonexistent/ca.pem") != std::string::npos);
  }
  BOOST_CHECK(!mgr.has_node("tls"));
}
