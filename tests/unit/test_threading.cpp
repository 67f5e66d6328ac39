// docs/threading.md: a violated invariant aborts a debug build naming it
// (PGCM_ASSERT).
#define BOOST_TEST_MODULE test_threading
#include <boost/test/unit_test.hpp>

#include <csignal>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#undef NDEBUG // the asserts are under test, whatever the build type
#include "assert.hpp"

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
