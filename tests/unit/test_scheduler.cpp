// pgcm's CAF scheduler (src/scheduler.cpp): work sharing plus a per-worker
// slot. Correct delivery under load, no starvation of a slot job behind a
// busy actor, and a clean shutdown with jobs still queued.
#define BOOST_TEST_MODULE test_scheduler
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include "pgcm/scheduler.hpp"

using namespace std::chrono_literals;

namespace {

using ping_atom = caf::atom_constant<caf::atom("ping")>;
using spin_atom = caf::atom_constant<caf::atom("spin")>;

caf::actor_system_config& config(caf::actor_system_config& cfg, std::size_t threads) {
  pgcm::use_pgcm_scheduler(cfg);
  cfg.set("scheduler.max-threads", threads);
  return cfg;
}

/// Forwards every integer to `next`, decremented, until it reaches zero;
/// then answers `done` itself.
caf::behavior relay(caf::event_based_actor* self, caf::actor next, caf::actor done) {
  return {
      [=](int hops) {
        if (hops == 0)
          self->send(done, ping_atom::value);
        else
          self->send(next, hops - 1);
      },
  };
}

} // namespace

BOOST_AUTO_TEST_CASE(messages_hop_through_many_actors_and_all_arrive) {
  caf::actor_system_config cfg;
  caf::actor_system sys{config(cfg, 2)};
  caf::scoped_actor self{sys};
  // A ring of 100 relays; 50 tokens each travel 2000 hops at once.
  constexpr int ring = 100;
  constexpr int tokens = 50;
  std::vector<caf::actor> relays(ring);
  // Build the ring back to front, then close it through a forwarding actor.
  auto closing = sys.spawn([](caf::event_based_actor* s) -> caf::behavior {
    return {[=](caf::actor& first) { s->become([=](int hops) { s->send(first, hops); }); }};
  });
  caf::actor next = closing;
  for (int i = ring - 1; i >= 0; --i) {
    relays[static_cast<std::size_t>(i)] = sys.spawn(relay, next, caf::actor{self});
    next = relays[static_cast<std::size_t>(i)];
  }
  self->send(closing, relays[0]);
  for (int t = 0; t < tokens; ++t)
    self->send(relays[static_cast<std::size_t>(t % ring)], 2000);
  int arrived = 0;
  self->receive_for(arrived, tokens)([](ping_atom) {}, caf::after(std::chrono::seconds{20}) >>
                                                           [] { BOOST_FAIL("tokens lost"); });
  BOOST_CHECK_EQUAL(arrived, tokens);
  for (auto& r : relays)
    self->send_exit(r, caf::exit_reason::user_shutdown);
  self->send_exit(closing, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(a_busy_actor_does_not_starve_the_job_in_its_slot) {
  // `busy` keeps its own mailbox full forever. When it wakes `idle`, that
  // actor lands in the slot of busy's worker thread. It must still run soon
  // (busy yields after max-throughput messages), although busy never runs
  // out of messages.
  caf::actor_system_config cfg;
  caf::actor_system sys{config(cfg, 2)};
  caf::scoped_actor self{sys};
  std::atomic<bool> stop{false};
  auto idle = sys.spawn([](caf::event_based_actor* s) -> caf::behavior {
    return {[=](ping_atom, caf::actor& reply_to) { s->send(reply_to, ping_atom::value); }};
  });
  auto busy = sys.spawn([&stop, idle](caf::event_based_actor* s) -> caf::behavior {
    return {
        [=, &stop](spin_atom, caf::actor& reply_to, bool first) {
          if (stop) return;
          for (int i = 0; i < 4; ++i)
            s->send(s, spin_atom::value, reply_to, false);
          if (first) s->send(idle, ping_atom::value, reply_to);
        },
    };
  });
  std::this_thread::sleep_for(50ms);
  auto start = std::chrono::steady_clock::now();
  self->send(busy, spin_atom::value, caf::actor{self}, true);
  bool answered = false;
  self->receive([&](ping_atom) { answered = true; }, caf::after(std::chrono::seconds{5}) >> [] {});
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  stop = true;
  BOOST_CHECK_MESSAGE(answered, "the slot job never ran while its worker stayed busy");
  BOOST_TEST_MESSAGE("answered after " << ms << " ms");
  self->send_exit(busy, caf::exit_reason::kill);
  self->send_exit(idle, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(an_explicit_max_throughput_is_kept) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-throughput", std::size_t{7});
  caf::actor_system sys{config(cfg, 2)};
  BOOST_CHECK_EQUAL(sys.scheduler().max_throughput(), 7u);
  caf::actor_system_config cfg2;
  caf::actor_system sys2{config(cfg2, 2)};
  BOOST_CHECK_EQUAL(sys2.scheduler().max_throughput(), 64u);
}

BOOST_AUTO_TEST_CASE(shutdown_with_work_in_flight_completes) {
  // The system goes away while actors still pass messages around: every
  // worker's slot and the central queue are cleaned up, nothing hangs.
  auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < 20; ++round) {
    caf::actor_system_config cfg;
    caf::actor_system sys{config(cfg, 2)};
    std::vector<caf::actor> actors;
    for (int i = 0; i < 20; ++i)
      actors.push_back(sys.spawn([](caf::event_based_actor* s) -> caf::behavior {
        s->set_default_handler(caf::drop);
        return {[=](int n, caf::actor& peer) {
          if (n > 0)
            s->send(peer, n - 1, caf::actor_cast<caf::actor>(s));
          else
            s->quit();
        }};
      }));
    for (std::size_t i = 0; i + 1 < actors.size(); i += 2)
      caf::anon_send(actors[i], 10000, actors[i + 1]);
  }
  // Every ~actor_system returned (a hang is caught here or by CTest's timeout).
  BOOST_CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds{30});
}
