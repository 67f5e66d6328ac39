#define BOOST_TEST_MODULE test_conninfo
#include <boost/test/unit_test.hpp>

#include <map>
#include <random>

#include "conninfo.hpp"
#include "password_source.hpp"
#include "unit_support.hpp"

using namespace pgcm;
using pgcm::test::fake_env;

namespace {

const env_lookup no_env = fake_env({{"PGUSER", "envuser"}});

void expect_error(const std::string& conninfo, const std::string& fragment,
                  const env_lookup& env = no_env) {
  BOOST_TEST_CONTEXT("conninfo: " << conninfo) {
    try {
      parse_conninfo(conninfo, env);
      BOOST_FAIL("no error");
    } catch (const conninfo_error& e) {
      BOOST_TEST(std::string{e.what()}.find(fragment) != std::string::npos, e.what());
    }
  }
}

} // namespace

BOOST_AUTO_TEST_CASE(keyword_string) {
  auto n = parse_conninfo("host=db1 port=6432 dbname=app user=mon application_name='my app' "
                          "sslmode=verify-full sslrootcert=/etc/ca.crt",
                          no_env);
  BOOST_TEST(n.config.host == "db1");
  BOOST_TEST(n.config.port == 6432);
  BOOST_TEST(n.config.database == "app");
  BOOST_TEST(n.config.user == "mon");
  BOOST_TEST(n.config.application_name == "my app");
  BOOST_TEST(n.config.ssl.enabled);
  BOOST_TEST(n.config.ssl.reject_unauthorized);
  BOOST_TEST(n.config.ssl.ca == "/etc/ca.crt");
  BOOST_TEST(!n.config.password);
  BOOST_TEST(n.password.type == password_source::kind::none);
  BOOST_TEST(n.notes.empty());
}

BOOST_AUTO_TEST_CASE(uri) {
  auto n = parse_conninfo("postgresql://mon:p%40ss@db1.example.com:7000/app%20db?sslmode=require"
                          "&application_name=x",
                          no_env);
  BOOST_TEST(n.config.host == "db1.example.com");
  BOOST_TEST(n.config.port == 7000);
  BOOST_TEST(n.config.database == "app db");
  BOOST_TEST(n.config.user == "mon");
  BOOST_TEST(n.password.type == password_source::kind::inline_value);
  BOOST_TEST(n.password.value == "p@ss");
  BOOST_TEST(n.config.ssl.enabled);
  BOOST_TEST(!n.config.ssl.reject_unauthorized);
  BOOST_TEST(n.config.application_name == "x");

  n = parse_conninfo("postgres://[::1]:5433/db", no_env);
  BOOST_TEST(n.config.host == "::1");
  BOOST_TEST(n.config.port == 5433);
}

BOOST_AUTO_TEST_CASE(libpq_environment_fills_the_gaps) {
  auto env = fake_env({{"PGHOST", "envhost"},
                       {"PGPORT", "5555"},
                       {"PGDATABASE", "envdb"},
                       {"PGUSER", "envuser"},
                       {"PGSSLMODE", "require"},
                       {"PGAPPNAME", "envapp"},
                       {"PGPASSWORD", "must-not-be-copied"}});
  auto n = parse_conninfo("", env);
  BOOST_TEST(n.config.host == "envhost");
  BOOST_TEST(n.config.port == 5555);
  BOOST_TEST(n.config.database == "envdb");
  BOOST_TEST(n.config.user == "envuser");
  BOOST_TEST(n.config.ssl.enabled);
  BOOST_TEST(!n.config.ssl.reject_unauthorized);
  BOOST_TEST(n.config.application_name == "envapp");
  // libpq applies PGPASSWORD itself when connecting.
  BOOST_TEST(!n.config.password);
  BOOST_TEST(n.password.type == password_source::kind::none);

  // The string wins over the environment.
  n = parse_conninfo("host=h port=1 sslmode=disable", env);
  BOOST_TEST(n.config.host == "h");
  BOOST_TEST(n.config.port == 1);
  BOOST_TEST(!n.config.ssl.enabled);
}

BOOST_AUTO_TEST_CASE(libpq_defaults) {
  auto n = parse_conninfo("", no_env);
  BOOST_TEST(n.config.host == "/var/run/postgresql");
  BOOST_TEST(n.config.port == 5432);
  BOOST_TEST(n.config.user == "envuser");
  BOOST_TEST(n.config.database == "envuser"); // database defaults to the user
  BOOST_TEST(n.config.application_name == "pgcm");
  BOOST_TEST(!n.config.ssl.enabled);

  n = parse_conninfo("hostaddr=10.1.2.3 fallback_application_name=fb", no_env);
  BOOST_TEST(n.config.host == "10.1.2.3");
  BOOST_TEST(n.config.application_name == "fb");
}

BOOST_AUTO_TEST_CASE(sslmodes) {
  auto env = fake_env({{"PGUSER", "u"}, {"HOME", "/home/u"}});
  for (auto* m : {"disable", "allow", "prefer"})
    BOOST_TEST(!parse_conninfo(std::string{"sslmode="} + m, env).config.ssl.enabled);
  auto n = parse_conninfo("sslmode=verify-ca", env);
  BOOST_TEST(n.config.ssl.enabled);
  BOOST_TEST(n.config.ssl.reject_unauthorized);
  BOOST_TEST(n.config.ssl.ca == "/home/u/.postgresql/root.crt");
  BOOST_TEST(n.notes.size() == 1u);
  expect_error("sslmode=sometimes", "invalid sslmode");
  expect_error("sslmode=verify-full", "needs sslrootcert", fake_env({{"PGUSER", "u"}}));
}

BOOST_AUTO_TEST_CASE(passfile_keyword) {
  auto n = parse_conninfo("host=h passfile=/tmp/pgpass", no_env);
  BOOST_TEST(n.password.type == password_source::kind::passfile);
  BOOST_TEST(n.password.value == "/tmp/pgpass");
  n = parse_conninfo("host=h password=x passfile=/tmp/pgpass", no_env);
  BOOST_TEST(n.password.type == password_source::kind::inline_value);
  BOOST_TEST(n.notes.size() == 1u);
}

BOOST_AUTO_TEST_CASE(ignored_and_refused_keywords) {
  auto n = parse_conninfo("host=h connect_timeout=3 client_encoding=UTF8 keepalives=1", no_env);
  BOOST_TEST(n.notes.size() == 3u);
  expect_error("host=h sslcert=/c.pem", "\"sslcert\" is not supported");
  expect_error("host=h target_session_attrs=read-write",
               "\"target_session_attrs\" is not supported");
  expect_error("service=foo", "\"service\" is not supported");
}

BOOST_AUTO_TEST_CASE(bad_strings) {
  expect_error("host=a,b", "several hosts");
  expect_error("postgresql://a,b/db", "several hosts");
  expect_error("host=a port=1,2", "several ports");
  expect_error("host=a port=x", "invalid port \"x\"");
  expect_error("host=a port=0", "invalid port");
  expect_error("host=a port=65536", "invalid port");
  expect_error("host=a port=123456789", "invalid port");
  expect_error("host=a hostaddr=1.2.3.4", "hostaddr together with host");
  expect_error("nonsense", "invalid connection string");
  expect_error("host='unterminated", "invalid connection string");
  expect_error("frobnicate=1", "invalid connection string");
  expect_error("postgresql://h:port/db", "invalid port \"port\"");
  expect_error(std::string{"host=a\0b", 8}, "NUL");
}

BOOST_AUTO_TEST_CASE(password_never_in_messages) {
  try {
    parse_conninfo("postgresql://u:hunter2@h/db?sslcert=x", no_env);
    BOOST_FAIL("no error");
  } catch (const conninfo_error& e) {
    BOOST_TEST(std::string{e.what()}.find("hunter2") == std::string::npos, e.what());
  }
}

BOOST_AUTO_TEST_CASE(passfile_rules) {
  const std::string file = "# comment\n"
                           "\n"
                           "db1:5432:app:mon:first\n"
                           "db1:5432:app:mon:second\n"
                           "localhost:*:*:admin:sock\\:et\n"
                           "*:6432:*:*:any\\\\thing:trailing\n"
                           "db\\:2:5432:app:mon:escaped-host\r\n";
  BOOST_TEST(passfile_lookup(file, "db1", "5432", "app", "mon").value_or("-") == "first");
  BOOST_TEST(passfile_lookup(file, "", "5432", "x", "admin").value_or("-") == "sock:et");
  BOOST_TEST(passfile_lookup(file, "/var/run/postgresql", "", "x", "admin").value_or("-") ==
             "sock:et");
  BOOST_TEST(passfile_lookup(file, "other", "6432", "x", "y").value_or("-") == "any\\thing");
  BOOST_TEST(passfile_lookup(file, "db:2", "5432", "app", "mon").value_or("-") == "escaped-host");
  BOOST_TEST(!passfile_lookup(file, "db1", "5432", "app", "nobody"));
  BOOST_TEST(!passfile_lookup(file, "/tmp", "5432", "x", "admin")); // other socket dir
  BOOST_TEST(!passfile_lookup("", "h", "1", "d", "u"));
  BOOST_TEST(!passfile_lookup("h:1:d:u", "h", "1", "d", "u")); // no password field
  BOOST_TEST(!passfile_lookup("h:1:d:u\\", "h", "1", "d", "u"));
}

BOOST_AUTO_TEST_CASE(env_password_source) {
  node_config c;
  password_source s{password_source::kind::env, "PW"};
  BOOST_TEST(resolve_password(s, c, fake_env({{"PW", "x"}})).value_or("") == "x");
  BOOST_CHECK_THROW(resolve_password(s, c, fake_env({})), password_error);
  BOOST_CHECK_THROW(resolve_password(s, c, fake_env({{"PW", ""}})), password_error);
  BOOST_TEST(!resolve_password(password_source{}, c, fake_env({})));
}

// Arbitrary input either parses or throws conninfo_error, never crashes.
BOOST_AUTO_TEST_CASE(random_input_never_crashes) {
  std::mt19937 rng{4242};
  const std::string seeds[] = {"host=h port=5432 dbname='d b' user=u sslmode=require",
                               "postgresql://u:p@h:1/d?sslmode=verify-full&sslrootcert=/x"};
  const std::string alphabet = "=' \\\"/:@?&%[]#,0123456789abcdehlmnoprstuyq";
  for (int i = 0; i < 20000; ++i) {
    std::string text = seeds[i % 2];
    test::random_edits(text, rng, alphabet, 6, 3, false);
    try {
      parse_conninfo(text, no_env);
    } catch (const conninfo_error&) {
    }
  }
}
