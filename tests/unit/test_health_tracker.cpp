#define BOOST_TEST_MODULE test_health_tracker
#include <boost/test/unit_test.hpp>

#include "health_tracker.hpp"

using namespace pgcm;
using namespace std::chrono;
using pgcm::detail::health_tracker;

namespace {
const auto t0 = system_clock::time_point{} + hours{1};
}

BOOST_AUTO_TEST_CASE(starts_unknown) {
  health_tracker h{3};
  BOOST_CHECK(h.status().status == health_state::unknown);
  BOOST_CHECK(h.status().role == node_role::unknown);
  BOOST_CHECK_EQUAL(h.status().consecutive_failures, 0);
}

BOOST_AUTO_TEST_CASE(first_success_is_healthy_at_once) {
  health_tracker h{3};
  BOOST_CHECK(h.on_success(microseconds{120}, node_role::primary, t0));
  BOOST_CHECK(h.status().status == health_state::healthy);
  BOOST_CHECK(h.status().role == node_role::primary);
  BOOST_CHECK_EQUAL(h.status().latency.count(), 120);
  BOOST_CHECK(h.status().last_check == t0);
  // Same status and role again: no change to report.
  BOOST_CHECK(!h.on_success(microseconds{90}, node_role::primary, t0));
  BOOST_CHECK_EQUAL(h.status().latency.count(), 90);
}

BOOST_AUTO_TEST_CASE(first_failure_from_unknown_is_unhealthy_at_once) {
  health_tracker h{3};
  BOOST_CHECK(h.on_failure("connection refused", t0));
  BOOST_CHECK(h.status().status == health_state::unhealthy);
  BOOST_CHECK_EQUAL(h.status().consecutive_failures, 1);
  BOOST_CHECK_EQUAL(h.status().last_error.value_or(""), "connection refused");
}

BOOST_AUTO_TEST_CASE(threshold_consecutive_failures_from_healthy) {
  health_tracker h{3};
  h.on_success(microseconds{1}, node_role::standby, t0);
  BOOST_CHECK(!h.on_failure("e1", t0));
  BOOST_CHECK(!h.on_failure("e2", t0));
  BOOST_CHECK(h.status().status == health_state::healthy);
  BOOST_CHECK_EQUAL(h.status().consecutive_failures, 2);
  BOOST_CHECK(h.on_failure("e3", t0));
  BOOST_CHECK(h.status().status == health_state::unhealthy);
  BOOST_CHECK_EQUAL(h.status().last_error.value_or(""), "e3");
  // Further failures: still unhealthy, no new change.
  BOOST_CHECK(!h.on_failure("e4", t0));
  BOOST_CHECK_EQUAL(h.status().consecutive_failures, 4);
}

BOOST_AUTO_TEST_CASE(a_success_in_between_resets_the_count) {
  health_tracker h{2};
  h.on_success(microseconds{1}, node_role::primary, t0);
  h.on_failure("e1", t0);
  h.on_success(microseconds{1}, node_role::primary, t0);
  BOOST_CHECK_EQUAL(h.status().consecutive_failures, 0);
  BOOST_CHECK(!h.status().last_error);
  BOOST_CHECK(!h.on_failure("e2", t0));
  BOOST_CHECK(h.status().status == health_state::healthy);
}

BOOST_AUTO_TEST_CASE(recovers_on_one_success_and_reports_role_changes) {
  health_tracker h{1};
  h.on_success(microseconds{1}, node_role::standby, t0);
  BOOST_CHECK(h.on_failure("down", t0));
  BOOST_CHECK(h.on_success(microseconds{1}, node_role::standby, t0));
  BOOST_CHECK(h.status().status == health_state::healthy);
  // Promotion: same status, new role, still a change.
  BOOST_CHECK(h.on_success(microseconds{1}, node_role::primary, t0));
  BOOST_CHECK(h.status().role == node_role::primary);
}

BOOST_AUTO_TEST_CASE(healthy_threshold_successes_bring_an_unhealthy_node_back) {
  health_tracker h{1, 3};
  BOOST_CHECK(h.on_success(microseconds{100}, node_role::primary, t0)); // first: healthy at once
  BOOST_CHECK(h.on_failure("down", t0));
  BOOST_CHECK(h.status().status == health_state::unhealthy);
  BOOST_CHECK(!h.on_success(microseconds{100}, node_role::primary, t0));
  BOOST_CHECK(!h.on_success(microseconds{100}, node_role::primary, t0));
  BOOST_CHECK(h.status().status == health_state::unhealthy);
  BOOST_CHECK(h.status().last_error == std::optional<std::string>{"down"});
  BOOST_CHECK_EQUAL(h.status().consecutive_failures, 0);
  // A failure in between starts the count over.
  h.on_failure("again", t0);
  BOOST_CHECK(!h.on_success(microseconds{100}, node_role::primary, t0));
  BOOST_CHECK(!h.on_success(microseconds{100}, node_role::primary, t0));
  BOOST_CHECK(h.on_success(microseconds{100}, node_role::primary, t0));
  BOOST_CHECK(h.status().status == health_state::healthy);
  BOOST_CHECK(!h.status().last_error);
}

BOOST_AUTO_TEST_CASE(replication_facts_keep_what_a_probe_did_not_ask) {
  health_tracker h{3};
  h.on_success(microseconds{100}, node_role::standby, t0);
  BOOST_CHECK(h.on_facts(1, 42, lsn{100}, lsn{120}));
  BOOST_CHECK(!h.on_facts(1, 0, lsn{150}, std::nullopt)); // no system identifier asked
  BOOST_CHECK_EQUAL(h.status().system_identifier, 42u);
  BOOST_CHECK(h.status().wal_lsn == std::optional<lsn>{lsn{150}});
  BOOST_CHECK(!h.status().receive_lsn);
  BOOST_CHECK(h.on_facts(2, 0, lsn{160}, lsn{160})); // a new timeline
  BOOST_CHECK_EQUAL(h.status().timeline, 2u);
}
