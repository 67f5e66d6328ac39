// The actor shells on CAF's deterministic scheduler (test_coordinator): no
// threads, no sleeping; time moves only when the test advances it. CAF's
// caf/test/dsl.hpp needs CAF's own test runner; with Boost.Test the
// coordinator is used directly ("scheduler.policy" = testing, sched.run(),
// sched.advance_time()).

#define BOOST_TEST_MODULE test_actor_shells
#include <boost/test/unit_test.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>

#include "node_error.hpp"
#include "pgcm/actors/node_supervisor.hpp"
#include "pgcm/messages/error.hpp"
#include "tick_timer.hpp"

using namespace std::chrono;
using namespace pgcm;

namespace {

/// The supervisor's clock in these tests; moves with the coordinator's.
std::int64_t fake_now_ns = 3'600'000'000'000;
std::int64_t fake_now() {
  return fake_now_ns;
}

struct test_config : caf::actor_system_config {
  test_config() {
    register_types(*this);
    set("scheduler.policy", caf::atom("testing"));
  }
};

struct fixture {
  test_config cfg;
  caf::actor_system sys{cfg};
  caf::scheduler::test_coordinator& sched =
      dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());

  /// Runs every message that is due.
  void run() { sched.run(); }

  /// Moves both clocks by `d` and runs what became due.
  void advance(nanoseconds d) {
    fake_now_ns += d.count();
    sched.advance_time(d);
    sched.run();
  }

  ~fixture() { sched.run(); }
};

// -- tick_timer in an actor ----------------------------------------------------

using arm_atom = caf::atom_constant<caf::atom("arm")>;
using ttick_atom = caf::atom_constant<caf::atom("ttick")>;

struct ticks {
  std::vector<std::int64_t> fired; // fake time of each tick that counted
  int stale = 0;                   // ticks that arrived but were not current
};

caf::behavior ticker(caf::event_based_actor* self, std::shared_ptr<ticks> out,
                     std::shared_ptr<detail::tick_timer> timer) {
  return {
      [=](arm_atom, std::int64_t at) { timer->arm(self, ttick_atom::value, at, fake_now()); },
      [=](ttick_atom, std::uint64_t gen) {
        if (timer->fired(gen))
          out->fired.push_back(fake_now());
        else
          ++out->stale;
      },
  };
}

BOOST_FIXTURE_TEST_CASE(tick_timer_keeps_one_tick_for_the_earliest_time, fixture) {
  auto out = std::make_shared<ticks>();
  auto timer = std::make_shared<detail::tick_timer>();
  auto t = sys.spawn(ticker, out, timer);
  auto t0 = fake_now_ns;
  auto ms = [](int n) { return std::int64_t{n} * 1'000'000; };
  caf::anon_send(t, arm_atom::value, t0 + ms(100));
  caf::anon_send(t, arm_atom::value, t0 + ms(50));     // earlier: replaces it
  caf::anon_send(t, arm_atom::value, t0 + ms(80));     // later than pending: nothing sent
  caf::anon_send(t, arm_atom::value, std::int64_t{0}); // never
  run();
  BOOST_CHECK_EQUAL(timer->generation(), 2u);
  BOOST_CHECK_EQUAL(timer->pending_at(), t0 + ms(50));
  advance(milliseconds{49});
  BOOST_CHECK(out->fired.empty());
  advance(milliseconds{1});
  BOOST_REQUIRE_EQUAL(out->fired.size(), 1u);
  BOOST_CHECK_EQUAL(out->fired[0], t0 + ms(50));
  BOOST_CHECK_EQUAL(timer->pending_at(), 0);
  // The tick for 100 ms arrives, stale: it does not count.
  advance(milliseconds{50});
  BOOST_CHECK_EQUAL(out->fired.size(), 1u);
  BOOST_CHECK_EQUAL(out->stale, 1);
  // Nothing pending: a later time arms a new tick.
  caf::anon_send(t, arm_atom::value, fake_now_ns + ms(10));
  run();
  advance(milliseconds{10});
  BOOST_CHECK_EQUAL(out->fired.size(), 2u);
  caf::anon_send_exit(t, caf::exit_reason::user_shutdown);
}

// -- node_supervisor ----------------------------------------------------------

/// Stands in for the manager: counts the supervisor's events (an unexpected
/// message would be answered with an error the supervisor does not expect).
caf::behavior fake_manager(caf::event_based_actor*, std::shared_ptr<int> events) {
  return {[=](publish_atom, const node_event&) { ++*events; }};
}

/// What a client got back.
struct answer {
  bool done = false;
  std::optional<error_info> error;
};

/// Sends (query_atom, job) to `sup` and records the answer.
caf::behavior client(caf::event_based_actor* self, node_supervisor_actor sup, query_job job,
                     std::shared_ptr<answer> out) {
  self->request(sup, caf::infinite, query_atom::value, std::move(job))
      .then(
          [=](const result_set&) {
            out->done = true;
            self->quit();
          },
          [=](caf::error& err) {
            out->done = true;
            out->error = to_error_info(err);
            self->quit();
          });
  return {[](int) {}};
}

struct supervisor_fixture : fixture {
  std::shared_ptr<int> events = std::make_shared<int>(0);
  caf::actor manager_dyn = sys.spawn(fake_manager, events);
  node_supervisor_actor sup;

  supervisor_fixture() {
    node_config nc;
    nc.host = "127.0.0.1";
    nc.port = 1; // never contacted: the supervisor is not started
    nc.pool.min = 1;
    nc.pool.max = 2;
    nc.pool.max_waiting = 2;
    manager_options opts;
    sup = spawn_node_supervisor(sys, caf::actor_cast<manager_actor>(manager_dyn), "n1", nc, opts,
                                nullptr, &fake_now);
    run();
  }

  query_job job(milliseconds timeout) {
    query_job j;
    j.sql = "SELECT 1";
    j.deadline_ns = fake_now_ns + duration_cast<nanoseconds>(timeout).count();
    j.timeout_ms = timeout.count();
    return j;
  }

  std::shared_ptr<answer> ask(query_job j) {
    auto out = std::make_shared<answer>();
    sys.spawn(client, sup, std::move(j), out);
    run();
    return out;
  }

  void stop() {
    caf::anon_send(sup, stop_atom::value, caf::timespan{0});
    run();
    caf::anon_send_exit(manager_dyn, caf::exit_reason::user_shutdown);
    run();
  }
};

BOOST_FIXTURE_TEST_CASE(waiting_request_times_out_at_its_deadline, supervisor_fixture) {
  // No connection yet: the request waits; its deadline is the supervisor's timer.
  auto a = ask(job(milliseconds{200}));
  BOOST_CHECK(!a->done);
  advance(milliseconds{199});
  BOOST_CHECK(!a->done);
  advance(milliseconds{1});
  BOOST_REQUIRE(a->done);
  BOOST_REQUIRE(a->error);
  BOOST_CHECK(a->error->code == errc::query_timeout);
  BOOST_CHECK_EQUAL(a->error->message, "node n1: query timeout (deadline of 200 ms passed while "
                                       "waiting for a connection)");
  stop();
}

BOOST_FIXTURE_TEST_CASE(earlier_deadline_rearms_the_timer, supervisor_fixture) {
  auto late = ask(job(milliseconds{500}));
  auto early = ask(job(milliseconds{100}));
  advance(milliseconds{100});
  BOOST_CHECK(early->done);
  BOOST_CHECK(!late->done);
  advance(milliseconds{399});
  BOOST_CHECK(!late->done);
  advance(milliseconds{1});
  BOOST_CHECK(late->done);
  stop();
}

BOOST_FIXTURE_TEST_CASE(full_wait_queue_answers_pool_exhausted, supervisor_fixture) {
  auto a = ask(job(seconds{10}));
  auto b = ask(job(seconds{10}));
  auto c = ask(job(seconds{10}));
  BOOST_CHECK(!a->done && !b->done);
  BOOST_REQUIRE(c->done && c->error);
  BOOST_CHECK(c->error->code == errc::pool_exhausted);
  // Stop answers the waiting ones at once.
  stop();
  BOOST_REQUIRE(a->done && a->error);
  BOOST_CHECK(a->error->code == errc::shutting_down);
  BOOST_CHECK(b->done);
  // ...and later ones are refused.
}

BOOST_FIXTURE_TEST_CASE(request_past_its_deadline_is_answered_at_once, supervisor_fixture) {
  auto j = job(milliseconds{10});
  j.deadline_ns = fake_now_ns; // due now
  auto a = ask(std::move(j));
  BOOST_REQUIRE(a->done && a->error);
  BOOST_CHECK(a->error->code == errc::query_timeout);
  stop();
}

} // namespace
