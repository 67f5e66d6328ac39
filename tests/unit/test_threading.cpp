// docs/threading.md: a violated invariant aborts a debug build naming it
// (PGCM_ASSERT), a reactor that cannot start is a clear error of its own, and
// inline execution can be switched off.
#define BOOST_TEST_MODULE test_threading
#include <boost/test/unit_test.hpp>

#include <csignal>
#include <string>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "pgcm/connection_manager.hpp"
#include "pgcm/error.hpp"
#include "pgcm/messages/protocol.hpp"

#undef NDEBUG // the asserts are under test, whatever the build type
#include "assert.hpp"

using namespace pgcm;

namespace {

struct child_result {
  bool aborted = false;
  std::string stderr_text;
};

/// Runs `f` in a forked child (before this process made any thread) and
/// reports whether it died of SIGABRT and what it wrote to stderr.
template <class F> child_result in_child(F f) {
  int pipe_fds[2];
  BOOST_REQUIRE(::pipe(pipe_fds) == 0);
  pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    ::signal(SIGABRT, SIG_DFL); // Boost.Test's handler would report and exit instead
    ::dup2(pipe_fds[1], 2);
    ::close(pipe_fds[0]);
    f();
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  child_result out;
  char buf[512];
  for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof(buf))) > 0;)
    out.stderr_text.append(buf, static_cast<std::size_t>(n));
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  out.aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
  return out;
}

} // namespace

BOOST_AUTO_TEST_CASE(a_violated_invariant_aborts_naming_it) {
  auto r = in_child([] {
    int owner = 1;
    PGCM_ASSERT(owner == 2, "I7: only the thread that runs the worker touches its PGconn");
  });
  BOOST_CHECK(r.aborted);
  BOOST_TEST(r.stderr_text.find("I7: only the thread that runs the worker touches its PGconn") !=
                 std::string::npos,
             r.stderr_text);
  BOOST_TEST(r.stderr_text.find("owner == 2") != std::string::npos, r.stderr_text);
  BOOST_TEST(r.stderr_text.find("test_threading.cpp:") != std::string::npos, r.stderr_text);
}

BOOST_AUTO_TEST_CASE(a_kept_invariant_does_nothing) {
  auto r = in_child([] { PGCM_ASSERT(1 + 1 == 2, "I1: arithmetic"); });
  BOOST_CHECK(!r.aborted);
  BOOST_CHECK(r.stderr_text.empty());
}

// No file descriptor left for the reactor's epoll instance: the facade says
// so, instead of a manager that died at once and answers "shutting down".
BOOST_AUTO_TEST_CASE(a_reactor_that_cannot_start_is_reported_as_such) {
  caf::actor_system_config cfg;
  register_types(cfg);
  caf::actor_system sys{cfg};
  rlimit before{};
  BOOST_REQUIRE(::getrlimit(RLIMIT_NOFILE, &before) == 0);
  // The lowest free descriptor becomes the limit: no new one can be made.
  int probe = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  BOOST_REQUIRE(probe >= 0);
  ::close(probe);
  rlimit tiny = before;
  tiny.rlim_cur = static_cast<rlim_t>(probe);
  BOOST_REQUIRE(::setrlimit(RLIMIT_NOFILE, &tiny) == 0);
  std::string what;
  std::optional<errc> code;
  try {
    connection_manager mgr{sys, manager_options{}};
  } catch (const error& e) {
    code = e.code();
    what = e.what();
  }
  BOOST_REQUIRE(::setrlimit(RLIMIT_NOFILE, &before) == 0);
  BOOST_REQUIRE(code.has_value());
  BOOST_CHECK(*code == errc::connection_failed);
  BOOST_TEST(what.find("could not start its I/O reactor") != std::string::npos, what);
  BOOST_TEST(what.find("epoll_create1 failed") != std::string::npos, what);
  BOOST_TEST(what.find("shutting down") == std::string::npos, what);
}

// The switch of inline execution (docs/threading.md I10): the option, and
// PGCM_INLINE=0 that turns it off whatever the option says.
BOOST_AUTO_TEST_CASE(PGCM_INLINE_turns_inline_execution_off_and_is_validated) {
  struct env_guard {
    explicit env_guard(const char* v) { ::setenv("PGCM_INLINE", v, 1); }
    ~env_guard() { ::unsetenv("PGCM_INLINE"); }
  };
  manager_options on;
  manager_options off;
  off.inline_execution = false;
  BOOST_CHECK(on.effective_inline_execution());
  BOOST_CHECK(!off.effective_inline_execution());
  {
    env_guard env{"0"};
    BOOST_CHECK(!on.effective_inline_execution());
    BOOST_CHECK(!validate(on));
  }
  {
    env_guard env{"1"};
    BOOST_CHECK(on.effective_inline_execution());
    BOOST_CHECK(!off.effective_inline_execution()); // 1 leaves the option's value
  }
  {
    env_guard env{"no"};
    auto problem = validate(on);
    BOOST_REQUIRE(problem.has_value());
    BOOST_CHECK(problem->code == errc::invalid_config);
    BOOST_TEST(problem->message.find("PGCM_INLINE=\"no\"") != std::string::npos, problem->message);
    try {
      connection_manager mgr{on};
      BOOST_FAIL("the facade started with PGCM_INLINE=no");
    } catch (const error& e) {
      BOOST_CHECK(e.code() == errc::invalid_config);
    }
  }
}
