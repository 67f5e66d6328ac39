#define BOOST_TEST_MODULE test_node_error
#include <boost/test/unit_test.hpp>

#include "node_error.hpp"

using namespace pgcm;
using namespace pgcm::detail;

BOOST_AUTO_TEST_CASE(prefixes_once) {
  BOOST_CHECK_EQUAL(node_message("a", "shutting down"), "node a: shutting down");
  BOOST_CHECK_EQUAL(node_message("a", "node a: shutting down"), "node a: shutting down");
  // Another node's prefix is kept: it is part of the text.
  BOOST_CHECK_EQUAL(node_message("a", "node b: x"), "node a: node b: x");
  // A node whose id is a prefix of another's.
  BOOST_CHECK_EQUAL(node_message("a", "node ab: x"), "node a: node ab: x");
}

BOOST_AUTO_TEST_CASE(wrapping_a_stored_error_does_not_repeat_it) {
  // A worker's connect error, re-wrapped when the node is down.
  BOOST_CHECK_EQUAL(
      node_message("a", "connection failed", "node a: connection failed: timeout after 5000 ms"),
      "node a: connection failed: timeout after 5000 ms");
  BOOST_CHECK_EQUAL(node_message("a", "connection failed", "connection failed: refused"),
                    "node a: connection failed: refused");
  BOOST_CHECK_EQUAL(node_message("a", "connection failed", "refused"),
                    "node a: connection failed: refused");
  BOOST_CHECK_EQUAL(node_message("a", "connection failed", "connection lost: reset"),
                    "node a: connection failed: connection lost: reset");
  // Idempotent: wrapping the result again changes nothing.
  auto once = node_message("a", "connection failed", "refused");
  BOOST_CHECK_EQUAL(node_message("a", "connection failed", once), once);
  BOOST_CHECK_EQUAL(node_message("a", once), once);
}

BOOST_AUTO_TEST_CASE(strips_only_its_own_prefix) {
  BOOST_CHECK_EQUAL(strip_node_prefix("a", "node a: connection failed: x"), "connection failed: x");
  BOOST_CHECK_EQUAL(strip_node_prefix("a", "node b: x"), "node b: x");
  BOOST_CHECK_EQUAL(strip_node_prefix("a", "x"), "x");
  BOOST_CHECK_EQUAL(strip_node_prefix("a", ""), "");
}

BOOST_AUTO_TEST_CASE(node_error_carries_code_and_message) {
  auto err =
      node_error(errc::connection_failed, "a", "connection failed", "node a: connection failed: x");
  auto info = to_error_info(err);
  BOOST_CHECK(info.code == errc::connection_failed);
  BOOST_CHECK_EQUAL(info.message, "node a: connection failed: x");
}
