#pragma once

// Many threads calling a connection_manager while another thread runs
// shutdown(): every call answers or throws shutting_down, none hangs.

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <pgcm/pgcm.hpp>

namespace pgcm::test {

inline void calls_during_shutdown(connection_manager& mgr, int threads = 8) {
  using namespace std::chrono;
  std::atomic<int> answered{0};
  std::atomic<int> refused{0};
  std::mutex mtx;
  std::vector<std::string> unexpected;
  std::atomic<bool> go{false};
  std::vector<std::future<void>> callers;
  for (int i = 0; i < threads; ++i)
    callers.push_back(std::async(std::launch::async, [&, i] {
      while (!go)
        std::this_thread::yield();
      auto give_up = steady_clock::now() + seconds{30};
      for (int n = 0; steady_clock::now() < give_up; ++n) {
        try {
          switch ((i + n) % 3) {
          case 0:
            mgr.query("node0", "SELECT 1");
            break;
          case 1:
            mgr.get_nodes();
            break;
          default:
            mgr.query_all("SELECT 1");
          }
          ++answered;
        } catch (const error& e) {
          if (e.code() == errc::shutting_down) {
            ++refused;
            return;
          }
          std::lock_guard<std::mutex> guard{mtx};
          unexpected.push_back(e.what());
          return;
        }
      }
      std::lock_guard<std::mutex> guard{mtx};
      unexpected.push_back("still answering 30 s after shutdown()");
    }));
  go = true;
  std::this_thread::sleep_for(milliseconds{300});
  auto shut = std::async(std::launch::async, [&] { mgr.shutdown(); });
  BOOST_REQUIRE(shut.wait_for(seconds{30}) == std::future_status::ready);
  for (auto& c : callers)
    BOOST_REQUIRE_MESSAGE(c.wait_for(seconds{40}) == std::future_status::ready,
                          "a call hung after shutdown()");
  BOOST_TEST(answered.load() > 0);
  BOOST_TEST(refused.load() == threads);
  for (auto& u : unexpected)
    BOOST_ERROR("unexpected outcome: " << u);
}

} // namespace pgcm::test
