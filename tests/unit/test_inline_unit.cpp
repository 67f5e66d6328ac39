// Actors running on threads that are not the scheduler's (src/inline_unit.cpp,
// src/reactor.cpp): a message sent with an inline_unit as context runs the
// receiver on the sending thread, within a budget; only actors marked as
// pgcm's core actors run inline (a name does not opt in); the reactor runs the actor it wakes on
// its own thread, so socket events are handled even while every scheduler thread is busy; and a
// reactor whose last owner is an actor on that very thread ends cleanly with
// its actor system.
#define BOOST_TEST_MODULE test_inline_unit
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include <sys/socket.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include "core_actor.hpp"
#include "inline_unit.hpp"
#include "pgcm/messages/atoms.hpp"
#include "pgcm/scheduler.hpp"
#include "reactor.hpp"

using namespace std::chrono_literals;

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::thread::id) // local messages only

namespace {

using ping_atom = caf::atom_constant<caf::atom("ping")>;
using block_atom = caf::atom_constant<caf::atom("block")>;

/// Tells `report` on which thread it handled an int, then passes it on to
/// `next` (if any).
caf::behavior where(caf::event_based_actor* self, caf::actor report, caf::actor next) {
  return {
      [=](int x) {
        self->send(report, x, std::this_thread::get_id());
        if (next) self->send(next, x);
      },
  };
}

/// Marked like pgcm's core actors (core_actor.hpp), which alone run inline.
struct core_state {
  static inline const char* name = "test.core";
};

caf::behavior core_where(pgcm::detail::dynamic_core_pointer<core_state> self, caf::actor report,
                         caf::actor next) {
  return where(self, std::move(report), std::move(next));
}

/// Named like a core actor (the old opt-in) but not marked: a name does not
/// make an actor run inline.
struct store_state {
  static inline const char* name = "pgcm.core.named_only";
};

caf::behavior store_where(caf::stateful_actor<store_state>* self, caf::actor report,
                          caf::actor next) {
  return where(self, std::move(report), std::move(next));
}

/// Thread on which actor number `x` handled its message (fails after 10 s).
std::thread::id reported(caf::scoped_actor& self, int x) {
  std::thread::id out;
  self->receive(
      [&](int y, std::thread::id id) {
        BOOST_CHECK_EQUAL(y, x);
        out = id;
      },
      caf::after(10s) >> [] { BOOST_FAIL("no report"); });
  return out;
}

caf::actor_system_config& config(caf::actor_system_config& cfg, std::size_t threads) {
  pgcm::use_pgcm_scheduler(cfg);
  cfg.set("scheduler.max-threads", threads);
  return cfg;
}

} // namespace

BOOST_AUTO_TEST_CASE(receivers_run_on_the_sending_thread_within_the_budget) {
  caf::actor_system_config cfg;
  caf::actor_system sys{config(cfg, 2)};
  caf::scoped_actor self{sys};
  auto me = std::this_thread::get_id();
  for (int budget : {2, 1, 0}) {
    // lazy_init: the first message starts the actor, so it is certainly
    // idle when the unit's message arrives.
    auto second = sys.spawn<caf::lazy_init>(core_where, caf::actor{self}, caf::actor{});
    auto first = sys.spawn<caf::lazy_init>(core_where, caf::actor{self}, second);
    {
      pgcm::detail::inline_unit unit{sys};
      first->eq_impl(caf::make_message_id(), nullptr, &unit, 7);
      unit.run(budget);
    }
    auto t1 = reported(self, 7);
    auto t2 = reported(self, 7);
    BOOST_TEST_CONTEXT("budget " << budget) {
      BOOST_CHECK_EQUAL(t1 == me, budget >= 1);
      BOOST_CHECK_EQUAL(t2 == me, budget >= 2);
    }
    self->send_exit(first, caf::exit_reason::user_shutdown);
    self->send_exit(second, caf::exit_reason::user_shutdown);
  }
}

BOOST_AUTO_TEST_CASE(an_application_actor_runs_on_the_scheduler_not_inline) {
  caf::actor_system_config cfg;
  caf::actor_system sys{config(cfg, 2)};
  caf::scoped_actor self{sys};
  auto app = sys.spawn<caf::lazy_init>(where, caf::actor{self}, caf::actor{});
  auto store = sys.spawn<caf::lazy_init>(store_where, caf::actor{self}, caf::actor{});
  auto core = sys.spawn<caf::lazy_init>(core_where, caf::actor{self}, app);
  {
    pgcm::detail::inline_unit unit{sys};
    core->eq_impl(caf::make_message_id(), nullptr, &unit, 5);
    store->eq_impl(caf::make_message_id(), nullptr, &unit, 6);
    unit.run(10);
  }
  // core and app report 5, store reports 6: match by value, in any order.
  std::map<int, std::vector<std::thread::id>> on;
  for (int i = 0; i < 3; ++i)
    self->receive([&](int x, std::thread::id id) { on[x].push_back(id); },
                  caf::after(10s) >> [] { BOOST_FAIL("no report"); });
  auto me = std::this_thread::get_id();
  BOOST_REQUIRE_EQUAL(on[5].size(), 2u);
  BOOST_REQUIRE_EQUAL(on[6].size(), 1u);
  BOOST_CHECK(on[5][0] == me); // core: reports first, from this thread
  BOOST_CHECK(on[5][1] != me); // app
  BOOST_CHECK(on[6][0] != me); // named like a core actor, not marked
  for (auto& a : {core, app, store})
    self->send_exit(a, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(jobs_left_in_a_unit_go_to_the_scheduler) {
  caf::actor_system_config cfg;
  caf::actor_system sys{config(cfg, 2)};
  caf::scoped_actor self{sys};
  auto a = sys.spawn<caf::lazy_init>(core_where, caf::actor{self}, caf::actor{});
  {
    pgcm::detail::inline_unit unit{sys};
    a->eq_impl(caf::make_message_id(), nullptr, &unit, 3);
  } // never run here
  BOOST_CHECK(reported(self, 3) != std::this_thread::get_id());
  self->send_exit(a, caf::exit_reason::user_shutdown);
}

namespace {

struct watcher_state {
  static inline const char* name = "test.watcher";
  std::shared_ptr<pgcm::detail::reactor> io;
  std::uint64_t id = 0;
};

/// Watches `fd` through its reactor (the only owner once it runs); on the
/// first event tells `report` the thread, drops the reactor and quits.
caf::behavior watcher(pgcm::detail::dynamic_core_pointer<watcher_state> self, int fd,
                      caf::actor report, std::shared_ptr<pgcm::detail::reactor> io) {
  self->state.io = std::move(io);
  return {
      [=](ping_atom) {
        self->state.id = self->state.io->add(caf::actor_cast<caf::actor>(self));
        BOOST_REQUIRE(self->state.io->watch(self->state.id, fd, true, false));
        return ping_atom::value;
      },
      [=](pgcm::io_atom, std::uint32_t) {
        self->state.io->remove(self->state.id, fd);
        self->state.io.reset(); // the last reference, on the reactor's own thread
        self->send(report, 1, std::this_thread::get_id());
        self->quit();
      },
  };
}

} // namespace

BOOST_AUTO_TEST_CASE(socket_events_are_handled_while_every_scheduler_thread_is_busy) {
  int fds[2];
  BOOST_REQUIRE_EQUAL(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  {
    caf::actor_system_config cfg;
    caf::actor_system sys{config(cfg, 1)};
    caf::scoped_actor self{sys};
    auto io = std::make_shared<pgcm::detail::reactor>(sys);
    auto w = sys.spawn(watcher, fds[0], caf::actor{self}, io);
    io.reset(); // w owns it alone
    self->request(w, 10s, ping_atom::value)
        .receive([](ping_atom) {}, [](caf::error& e) { BOOST_FAIL(to_string(e)); });
    std::this_thread::sleep_for(100ms); // w finishes its turn and goes idle
    // Occupy the only scheduler thread for 3 s.
    auto blocker = sys.spawn([](caf::event_based_actor*) -> caf::behavior {
      return {[](block_atom) { std::this_thread::sleep_for(3s); }};
    });
    self->send(blocker, block_atom::value);
    std::this_thread::sleep_for(100ms);
    auto sent = std::chrono::steady_clock::now();
    BOOST_REQUIRE_EQUAL(::write(fds[1], "x", 1), 1);
    self->receive([](int, std::thread::id) {},
                  caf::after(10s) >> [] { BOOST_FAIL("the socket event was never handled"); });
    auto took = std::chrono::steady_clock::now() - sent;
    // On the reactor's thread at once, not after the blocker's 3 s.
    BOOST_CHECK_LT(std::chrono::duration_cast<std::chrono::milliseconds>(took).count(), 1500);
  } // ~actor_system waits for the reactor thread, which outlived its owner
    // (a use after free here is what the ASan run of this test would catch)
  ::close(fds[0]);
  ::close(fds[1]);
}

// manager_options::inline_execution off (PGCM_INLINE=0): the actor the
// reactor wakes runs on the scheduler's (only) thread, like any other.
BOOST_AUTO_TEST_CASE(with_inline_execution_off_the_reactor_wakes_actors_on_the_scheduler) {
  int fds[2];
  BOOST_REQUIRE_EQUAL(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  {
    caf::actor_system_config cfg;
    caf::actor_system sys{config(cfg, 1)};
    caf::scoped_actor self{sys};
    auto app = sys.spawn(where, caf::actor{self}, caf::actor{});
    self->send(app, 2);
    auto scheduler_thread = reported(self, 2);
    auto io = std::make_shared<pgcm::detail::reactor>(sys, false);
    auto w = sys.spawn(watcher, fds[0], caf::actor{self}, io);
    io.reset();
    self->request(w, 10s, ping_atom::value)
        .receive([](ping_atom) {}, [](caf::error& e) { BOOST_FAIL(to_string(e)); });
    BOOST_REQUIRE_EQUAL(::write(fds[1], "x", 1), 1);
    BOOST_CHECK(reported(self, 1) == scheduler_thread);
    self->send_exit(app, caf::exit_reason::user_shutdown);
  }
  ::close(fds[0]);
  ::close(fds[1]);
}
