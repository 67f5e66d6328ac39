// pgcm's logger: replacing it while other threads log is safe, and a level
// that names nothing is refused with a message instead of turning logging off.
#define BOOST_TEST_MODULE test_log
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cstdlib>
#include <thread>
#include <vector>

#include <spdlog/sinks/base_sink.h>

#include "log.hpp"
#include "pgcm/connection_manager.hpp"
#include "pgcm/error.hpp"
#include "pgcm/logging.hpp"

using namespace pgcm;

namespace {

/// Counts the lines it gets; its destructor poisons the count, so a line
/// logged through a logger that was already destroyed shows up even without
/// a sanitizer.
class counting_sink final : public spdlog::sinks::base_sink<std::mutex> {
public:
  explicit counting_sink(std::atomic<long>& total) : total_(total) {}
  ~counting_sink() override { alive_ = 0; }

protected:
  void sink_it_(const spdlog::details::log_msg&) override {
    BOOST_TEST_REQUIRE(alive_ == 0x5ca1ab1e, "a destroyed logger was used");
    ++total_;
  }
  void flush_() override {}

private:
  std::atomic<long>& total_;
  volatile unsigned alive_ = 0x5ca1ab1e;
};

std::shared_ptr<spdlog::logger> counting_logger(std::atomic<long>& total) {
  auto lg = std::make_shared<spdlog::logger>("pgcm", std::make_shared<counting_sink>(total));
  lg->set_level(spdlog::level::info);
  return lg;
}

struct env_guard {
  explicit env_guard(const char* value) { ::setenv("PGCM_LOG_LEVEL", value, 1); }
  ~env_guard() { ::unsetenv("PGCM_LOG_LEVEL"); }
};

} // namespace

BOOST_AUTO_TEST_CASE(logger_swapped_under_load_from_several_threads) {
  std::atomic<long> total{0};
  std::atomic<bool> stop{false};
  std::atomic<int> started{0};
  set_logger(counting_logger(total));
  std::vector<std::thread> loggers;
  for (int i = 0; i < 4; ++i)
    loggers.emplace_back([&, i] {
      ++started;
      while (!stop)
        log::info("thread {} logs {}", i, "a line");
    });
  std::thread swapper{[&] {
    while (started < 4)
      std::this_thread::yield();
    for (int i = 0; i < 20000; ++i)
      set_logger(counting_logger(total));
    stop = true;
  }};
  swapper.join();
  for (auto& t : loggers)
    t.join();
  set_logger(nullptr);
  BOOST_TEST(total.load() > 0);
}

BOOST_AUTO_TEST_CASE(set_log_level_rejects_an_unknown_level) {
  BOOST_CHECK_NO_THROW(set_log_level("debug"));
  BOOST_CHECK_NO_THROW(set_log_level("off"));
  try {
    set_log_level("verbose");
    BOOST_FAIL("no error for an unknown level");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::invalid_argument);
    std::string what = e.what();
    BOOST_TEST(what.find("verbose") != std::string::npos, what);
    BOOST_TEST(what.find("trace, debug, info, warn, error, critical, off") != std::string::npos,
               what);
  }
  set_log_level("warn");
}

BOOST_AUTO_TEST_CASE(mistyped_PGCM_LOG_LEVEL_is_refused_naming_the_variable) {
  {
    env_guard env{"debgu"};
    auto problem = log::environment_problem();
    BOOST_TEST_REQUIRE(problem.has_value());
    BOOST_TEST(problem->find("PGCM_LOG_LEVEL") != std::string::npos, *problem);
    BOOST_TEST(problem->find("debgu") != std::string::npos, *problem);
    BOOST_TEST(problem->find("trace, debug, info") != std::string::npos, *problem);
    try {
      connection_manager mgr;
      BOOST_FAIL("the facade started with PGCM_LOG_LEVEL=debgu");
    } catch (const error& e) {
      BOOST_CHECK(e.code() == errc::invalid_config);
      BOOST_TEST(std::string{e.what()}.find("PGCM_LOG_LEVEL") != std::string::npos, e.what());
    }
  }
  for (auto ok : {"trace", "info", "off", ""}) {
    env_guard env{ok};
    BOOST_TEST(!log::environment_problem().has_value(), ok);
  }
}
