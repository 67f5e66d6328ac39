#define BOOST_TEST_MODULE test_routing_table
#include <boost/test/unit_test.hpp>

#include <map>

#include "routing_table.hpp"

using namespace pgcm;
using namespace std::chrono;
using pgcm::detail::node_facts;
using pgcm::detail::routing_table;

namespace {

const auto t0 = system_clock::time_point{} + hours{1000};
constexpr std::uint64_t cluster_id = 7000000000000000001ull;

node_facts primary_at(std::uint64_t pos, std::uint32_t timeline = 1,
                      system_clock::time_point at = t0) {
  node_facts f;
  f.healthy = true;
  f.role = node_role::primary;
  f.timeline = timeline;
  f.system_identifier = cluster_id;
  f.wal_lsn = lsn{pos};
  f.sampled_at = at;
  return f;
}

node_facts standby_at(std::uint64_t replayed, system_clock::time_point at = t0,
                      std::optional<system_clock::time_point> last_replay = std::nullopt) {
  node_facts f;
  f.healthy = true;
  f.role = node_role::standby;
  f.timeline = 1;
  f.system_identifier = cluster_id;
  f.wal_lsn = lsn{replayed};
  f.receive_lsn = lsn{replayed};
  f.last_replay = last_replay;
  f.sampled_at = at;
  return f;
}

auto no_load = [](const std::string&) { return 0.0; };

// primary p, standbys s1 and s2, all caught up at position 1000.
routing_table three_nodes() {
  routing_table t;
  t.update("p", primary_at(1000));
  t.update("s1", standby_at(1000));
  t.update("s2", standby_at(1000));
  return t;
}

std::string picked(routing_table& t, const route& r) {
  auto res = t.pick(r, no_load);
  return res.node ? *res.node : "<" + to_string(res.code) + ": " + res.message + ">";
}

} // namespace

BOOST_AUTO_TEST_CASE(lsn_text_round_trips_and_rejects_garbage) {
  auto x = lsn::parse("16/B374D848");
  BOOST_CHECK_EQUAL(x.value, (std::uint64_t{0x16} << 32) | 0xB374D848u);
  BOOST_CHECK_EQUAL(x.to_string(), "16/B374D848");
  BOOST_CHECK_EQUAL(lsn::parse("0/0").value, 0u);
  BOOST_CHECK_EQUAL(lsn::parse("ffffffff/ffffffff").to_string(), "FFFFFFFF/FFFFFFFF");
  BOOST_CHECK(lsn::parse("0/1") < lsn::parse("1/0"));
  BOOST_CHECK(lsn::parse("1/0") != lsn::parse("0/1"));
  for (auto bad : {"", "/", "16", "16/", "/B3", "16/B374D848/1", "g/1", "1/123456789", " 1/2",
                   "1/2 ", "-1/2"}) {
    try {
      lsn::parse(bad);
      BOOST_ERROR("parsed " << bad);
    } catch (const error& e) {
      BOOST_CHECK(e.code() == errc::invalid_argument);
      BOOST_CHECK(std::string{e.what()}.find("invalid WAL position") != std::string::npos);
    }
  }
}

BOOST_AUTO_TEST_CASE(target_names_parse_back) {
  for (auto t : {target::primary, target::standby, target::prefer_standby, target::any})
    BOOST_CHECK(parse_target(to_string(t)) == t);
  BOOST_CHECK(parse_target("prefer_standby") == target::prefer_standby);
  BOOST_CHECK(!parse_target("master"));
}

BOOST_AUTO_TEST_CASE(byte_lag_is_primary_minus_replay_never_negative) {
  routing_table t;
  t.update("p", primary_at(5000));
  t.update("s1", standby_at(3000, t0, t0 - seconds{2}));
  t.update("s2", standby_at(6000)); // sampled after the primary wrote more
  BOOST_REQUIRE(t.view("s1")->lag_bytes);
  BOOST_CHECK_EQUAL(*t.view("s1")->lag_bytes, 2000); // the sign matters (pgdog#1122)
  BOOST_CHECK_EQUAL(*t.view("s2")->lag_bytes, 0);
  BOOST_CHECK_EQUAL(*t.view("p")->lag_bytes, 0);
}

BOOST_AUTO_TEST_CASE(time_lag_is_zero_when_caught_up_on_an_idle_primary) {
  routing_table t;
  // The last transaction was replayed an hour ago: the primary is idle.
  t.update("p", primary_at(5000));
  t.update("s1", standby_at(5000, t0, t0 - hours{1}));
  BOOST_REQUIRE(t.view("s1")->lag);
  BOOST_CHECK_EQUAL(t.view("s1")->lag->count(), 0);
}

// The manager republishes its snapshot only when routing would change:
// a probe that changed nothing but its time leaves it as it was; a new
// position, a lag that grows with time, or a role does not.
BOOST_AUTO_TEST_CASE(same_routing_ignores_only_when_the_facts_were_sampled) {
  auto before = three_nodes();
  auto t = before;
  t.update("s1", standby_at(1000, t0 + seconds{5}));
  t.update("p", primary_at(1000, 1, t0 + seconds{5}));
  BOOST_CHECK(t.same_routing(before));
  t.update("p", primary_at(1200, 1, t0 + seconds{6}));
  BOOST_CHECK(!t.same_routing(before)); // s1 and s2 are 200 bytes behind now
  auto behind = t;
  t.update("s1", standby_at(1000, t0 + seconds{9}));
  BOOST_CHECK(!t.same_routing(behind)); // the same position, but 3 s of lag
  auto demoted = three_nodes();
  auto f = primary_at(1000);
  f.healthy = false;
  demoted.update("p", f);
  BOOST_CHECK(!demoted.same_routing(before));
  routing_table two;
  two.update("p", primary_at(1000));
  two.update("s1", standby_at(1000));
  BOOST_CHECK(!two.same_routing(before));
}

BOOST_AUTO_TEST_CASE(time_lag_counts_from_when_the_standby_fell_behind) {
  routing_table t;
  t.update("p", primary_at(5000));
  t.update("s1", standby_at(5000, t0, t0 - hours{1}));
  // The primary writes after an hour idle; the standby's replay is paused.
  t.update("p", primary_at(9000, 1, t0 + seconds{1}));
  BOOST_CHECK_EQUAL(*t.view("s1")->lag_bytes, 4000);
  BOOST_CHECK_EQUAL(t.view("s1")->lag->count(), 0); // just noticed, not an hour
  t.update("s1", standby_at(5000, t0 + seconds{6}, t0 - hours{1}));
  BOOST_CHECK_EQUAL(t.view("s1")->lag->count(), 5000);
  // A recent replayed commit bounds it from the other side.
  t.update("s1", standby_at(6000, t0 + seconds{9}, t0 + seconds{8}));
  BOOST_CHECK_EQUAL(t.view("s1")->lag->count(), 1000);
  // Caught up: 0 again, and the next fall behind counts afresh.
  t.update("s1", standby_at(9000, t0 + seconds{10}, t0 + seconds{9}));
  BOOST_CHECK_EQUAL(t.view("s1")->lag->count(), 0);
  t.update("p", primary_at(9500, 1, t0 + seconds{20}));
  BOOST_CHECK_EQUAL(t.view("s1")->lag->count(), 0);
}

BOOST_AUTO_TEST_CASE(lag_is_unknown_without_a_primary_or_a_position) {
  routing_table t;
  t.update("s1", standby_at(1000));
  BOOST_CHECK(!t.view("s1")->lag_bytes);
  BOOST_CHECK(!t.view("s1")->lag);
  t.update("p", primary_at(1000));
  auto f = standby_at(0);
  f.wal_lsn.reset();
  t.update("s2", f);
  BOOST_CHECK(!t.view("s2")->lag_bytes);
  route bounded;
  bounded.to = target::standby;
  bounded.max_lag_bytes = 1 << 20;
  BOOST_CHECK_EQUAL(picked(t, bounded), "s1");
  BOOST_CHECK(t.ineligible("s2", bounded) == std::string{"lag unknown"});
}

BOOST_AUTO_TEST_CASE(targets_choose_by_role) {
  auto t = three_nodes();
  route r;
  r.to = target::primary;
  for (int i = 0; i < 4; ++i)
    BOOST_CHECK_EQUAL(picked(t, r), "p");
  r.to = target::standby;
  std::map<std::string, int> seen;
  for (int i = 0; i < 10; ++i)
    ++seen[picked(t, r)];
  BOOST_CHECK_EQUAL(seen.size(), 2u); // round-robin over s1 and s2
  BOOST_CHECK_EQUAL(seen["s1"], 5);
  r.to = target::any;
  seen.clear();
  for (int i = 0; i < 9; ++i)
    ++seen[picked(t, r)];
  BOOST_CHECK_EQUAL(seen.size(), 3u);
  BOOST_CHECK_EQUAL(seen["p"], 3);
}

BOOST_AUTO_TEST_CASE(a_const_snapshot_picks_like_the_table_with_the_turn_given) {
  // The facade's routing snapshot (routing_snapshot.hpp) picks on a const
  // copy with its own round-robin turn: the same rules, ties by the turn.
  const routing_table t = three_nodes();
  route r;
  r.to = target::standby;
  BOOST_CHECK_EQUAL(*t.pick(r, no_load, 0).node, "s1");
  BOOST_CHECK_EQUAL(*t.pick(r, no_load, 1).node, "s2");
  BOOST_CHECK_EQUAL(*t.pick(r, no_load, 2).node, "s1");
  r.to = target::primary;
  BOOST_CHECK_EQUAL(*t.pick(r, no_load, 7).node, "p");
  auto copy = t;
  auto none = copy.pick(route{target::standby, std::int64_t{0}, std::nullopt, lsn{5000}, false},
                        no_load, 0);
  BOOST_CHECK(!none.node);
  BOOST_CHECK(none.code == errc::no_eligible_node);
}

BOOST_AUTO_TEST_CASE(least_loaded_wins) {
  auto t = three_nodes();
  std::map<std::string, double> load{{"p", 0.0}, {"s1", 0.5}, {"s2", 0.1}};
  auto by_load = [&](const std::string& id) { return load[id]; };
  route r;
  r.to = target::standby;
  for (int i = 0; i < 3; ++i)
    BOOST_CHECK_EQUAL(*t.pick(r, by_load).node, "s2");
  r.to = target::any;
  BOOST_CHECK_EQUAL(*t.pick(r, by_load).node, "p");
}

BOOST_AUTO_TEST_CASE(prefer_standby_falls_back_to_the_primary_standby_does_not) {
  auto t = three_nodes();
  auto down = standby_at(1000);
  down.healthy = false;
  t.update("s1", down);
  t.update("s2", down);
  route r;
  r.to = target::prefer_standby;
  BOOST_CHECK_EQUAL(picked(t, r), "p");
  r.to = target::standby;
  auto res = t.pick(r, no_load);
  BOOST_CHECK(!res.node);
  BOOST_CHECK(res.code == errc::no_eligible_node);
  BOOST_CHECK_EQUAL(
      res.message, "no eligible node for target standby: p: primary; s1: unhealthy; s2: unhealthy");
}

BOOST_AUTO_TEST_CASE(bounded_routes_leave_lagging_standbys_out) {
  routing_table t;
  t.update("p", primary_at(100000));
  t.update("s1", standby_at(100000));
  t.update("s2", standby_at(10000, t0, t0 - seconds{30}));
  route r;
  r.to = target::standby;
  r.max_lag_bytes = 4096;
  for (int i = 0; i < 4; ++i)
    BOOST_CHECK_EQUAL(picked(t, r), "s1");
  BOOST_CHECK_EQUAL(*t.ineligible("s2", r), "lag 90000 bytes > 4096");
  // The same in time: s2 fell behind when first seen, 0 ms ago; later 7 s.
  route timed;
  timed.to = target::standby;
  timed.max_lag = milliseconds{2000};
  BOOST_CHECK(!t.ineligible("s2", timed));
  t.update("s2", standby_at(10000, t0 + seconds{7}, t0 - seconds{30}));
  BOOST_CHECK_EQUAL(*t.ineligible("s2", timed), "lag 7000 ms > 2000 ms");
  // Caught up again: back in.
  t.update("s2", standby_at(100000, t0 + seconds{8}, t0 + seconds{8}));
  BOOST_CHECK(!t.ineligible("s2", r));
  BOOST_CHECK(!t.ineligible("s2", timed));
}

BOOST_AUTO_TEST_CASE(read_your_writes_uses_only_caught_up_nodes) {
  routing_table t;
  t.update("p", primary_at(9000));
  t.update("s1", standby_at(5000));
  t.update("s2", standby_at(9000));
  route r;
  r.to = target::standby;
  r.after = lsn{8000};
  for (int i = 0; i < 4; ++i)
    BOOST_CHECK_EQUAL(picked(t, r), "s2");
  // Nobody caught up: standby refuses, prefer_standby and any go to the primary.
  r.after = lsn{9500};
  BOOST_CHECK(t.pick(r, no_load).code == errc::no_eligible_node);
  BOOST_CHECK(t.ineligible("s1", r)->find("replayed 0/1388 < 0/251C") == 0);
  r.to = target::prefer_standby;
  BOOST_CHECK_EQUAL(picked(t, r), "p");
  r.to = target::any;
  for (int i = 0; i < 4; ++i)
    BOOST_CHECK_EQUAL(picked(t, r), "p");
}

BOOST_AUTO_TEST_CASE(primary_is_never_a_node_last_seen_as_standby) {
  routing_table t;
  t.update("s1", standby_at(1000));
  route r;
  r.to = target::primary;
  auto res = t.pick(r, no_load);
  BOOST_CHECK(!res.node);
  BOOST_CHECK_EQUAL(res.message, "no eligible node for target primary: s1: standby");
  // The old primary is down (unhealthy, last role primary): not used either.
  auto old = primary_at(1000);
  old.healthy = false;
  t.update("p", old);
  BOOST_CHECK(!t.pick(r, no_load).node);
  // s1 promoted: the writes move to it.
  auto changed = t.update("s1", primary_at(2000, 2));
  BOOST_CHECK_EQUAL(changed.size(), 1u);
  BOOST_CHECK_EQUAL(picked(t, r), "s1");
}

BOOST_AUTO_TEST_CASE(split_brain_higher_timeline_wins) {
  auto t = three_nodes();
  // s1 promoted while p still runs: s1 is on timeline 2.
  auto changed = t.update("s1", primary_at(1200, 2));
  BOOST_REQUIRE(t.primary());
  BOOST_CHECK_EQUAL(*t.primary(), "s1");
  BOOST_REQUIRE(t.view("p")->conflict);
  BOOST_CHECK(t.view("p")->conflict->find("older than timeline 2 of s1") != std::string::npos);
  BOOST_CHECK(!t.split_brain());
  // Events for s1 (role and timeline) and p (conflict).
  BOOST_CHECK_EQUAL(changed.size(), 2u);
  route r;
  r.to = target::primary;
  BOOST_CHECK_EQUAL(picked(t, r), "s1");
  r.to = target::any;
  for (int i = 0; i < 6; ++i)
    BOOST_CHECK_NE(picked(t, r), "p");
  // The old primary goes away: the conflict is gone with it.
  auto gone = primary_at(1000);
  gone.healthy = false;
  t.update("p", gone);
  BOOST_CHECK(!t.view("p")->conflict);
}

BOOST_AUTO_TEST_CASE(split_brain_on_equal_timelines_refuses_writes) {
  auto t = three_nodes();
  t.update("s1", primary_at(1200, 1));
  BOOST_CHECK(t.split_brain());
  BOOST_CHECK(!t.primary());
  BOOST_CHECK(t.view("p")->conflict);
  BOOST_CHECK(t.view("s1")->conflict);
  route r;
  r.to = target::primary;
  auto res = t.pick(r, no_load);
  BOOST_CHECK(res.code == errc::split_brain);
  BOOST_CHECK_EQUAL(res.message,
                    "split brain: p, s1 are all primary on the same timeline; writes refused");
  // Reads still go to the standby that is not in conflict (no lag bound:
  // without a primary its lag is unknown).
  r.to = target::standby;
  BOOST_CHECK_EQUAL(picked(t, r), "s2");
  // One steps down (unreachable): the other is the primary again.
  auto down = primary_at(1200, 1);
  down.healthy = false;
  t.update("s1", down);
  BOOST_CHECK(!t.split_brain());
  BOOST_CHECK_EQUAL(*t.primary(), "p");
}

BOOST_AUTO_TEST_CASE(a_node_of_another_cluster_is_in_conflict_from_its_first_probe) {
  auto t = three_nodes();
  auto foreign = primary_at(50, 1);
  foreign.system_identifier = 42;
  auto changed = t.update("x", foreign);
  BOOST_CHECK_EQUAL(changed.size(), 1u);
  BOOST_REQUIRE(t.view("x")->conflict);
  BOOST_CHECK(t.view("x")->conflict->find("system identifier 42 differs") == 0);
  BOOST_CHECK_EQUAL(*t.primary(), "p"); // no split brain from a foreign primary
  route r;
  r.to = target::any;
  for (int i = 0; i < 6; ++i)
    BOOST_CHECK_NE(picked(t, r), "x");
  BOOST_CHECK(t.remove("x").empty());
}
