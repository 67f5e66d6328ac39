// Soak: mixed query / query_all load from many requesters while nodes are
// killed, restarted, blackholed, reset and promoted at random. Prints requests
// sent, answered ok, answered with each error, and lost (must be 0), and the
// process's RSS at start and end. Run it with scripts/soak (own cluster).
//   pgcm_soak --env FILE [--duration SECONDS] [--threads N] [--seed N]
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <pgcm/pgcm.hpp>

#include "cluster.hpp"
#include "fault_proxy.hpp"

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

long rss_kb() {
  std::ifstream in{"/proc/self/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

struct counters {
  std::atomic<long> sent{0};
  std::atomic<long> ok{0};
  std::mutex mtx;
  std::map<std::string, long> errors;
  void error(pgcm::errc code) {
    std::lock_guard<std::mutex> guard{mtx};
    ++errors[pgcm::to_string(code)];
  }
  long answered_with_error() {
    std::lock_guard<std::mutex> guard{mtx};
    long n = 0;
    for (auto& kv : errors)
      n += kv.second;
    return n;
  }
};

} // namespace

int main(int argc, char** argv) {
  int duration = 300;
  int threads = 16;
  unsigned seed = std::random_device{}();
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--env")
      setenv("PGCM_TEST_ENV_FILE", argv[i + 1], 1);
    else if (k == "--duration")
      duration = std::atoi(argv[i + 1]);
    else if (k == "--threads")
      threads = std::atoi(argv[i + 1]);
    else if (k == "--seed")
      seed = static_cast<unsigned>(std::atoi(argv[i + 1]));
  }
  auto& c = pgcm::test::cluster::get();
  auto nodes = c.nodes();
  std::vector<std::unique_ptr<pgcm::test::fault_proxy>> proxies;
  pgcm::manager_options opts;
  opts.health_check_interval = 500ms;
  opts.health_check_timeout = 1000ms;
  opts.unhealthy_threshold = 2;
  opts.connect_timeout = 1500ms;
  opts.query_timeout = 2000ms;
  opts.shutdown_timeout = 3000ms;
  opts.reconnect_backoff_max = 1000ms;
  pgcm::connection_manager mgr{opts};
  std::vector<std::pair<std::string, pgcm::node_config>> cfgs;
  for (auto& n : nodes) {
    proxies.push_back(std::make_unique<pgcm::test::fault_proxy>(c.port(n)));
    pgcm::node_config cfg;
    cfg.host = "127.0.0.1";
    cfg.port = proxies.back()->port();
    cfg.database = c.database();
    cfg.user = c.user();
    cfg.password = c.password();
    cfg.application_name = "pgcm_soak";
    cfg.pool.max = 6;
    cfgs.emplace_back(n, cfg);
  }
  mgr.initialize(cfgs);
  std::cerr << "soak: seed " << seed << ", " << threads << " requesters, " << duration << " s\n";

  counters stats;
  std::atomic<bool> stop{false};
  // Each requester publishes when its current call started (0 = idle), so a
  // call that never returns is seen as lost.
  std::vector<std::atomic<long long>> started(static_cast<std::size_t>(threads));
  std::vector<std::thread> workers;
  auto now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               clock_type::now().time_since_epoch())
        .count();
  };
  auto warm_rss = 0L;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      std::minstd_rand rng{seed + static_cast<unsigned>(t)};
      while (!stop) {
        started[static_cast<std::size_t>(t)] = now_ms();
        ++stats.sent;
        try {
          if (rng() % 4 == 0) {
            auto all = mgr.query_all("SELECT pg_is_in_recovery(), $1::int",
                                     {static_cast<int>(rng() % 100)});
            bool all_ok = true;
            for (auto& r : all)
              if (!r.success) {
                all_ok = false;
                stats.error(r.error->code);
              }
            if (all_ok) ++stats.ok;
          } else {
            auto& n = nodes[rng() % nodes.size()];
            auto sql = rng() % 10 == 0 ? "SELECT pg_sleep(0.05)" : "SELECT $1::int AS v";
            mgr.query(n, sql, {static_cast<int>(rng() % 1000)});
            ++stats.ok;
          }
        } catch (const pgcm::error& e) {
          stats.error(e.code());
        }
        started[static_cast<std::size_t>(t)] = 0;
      }
    });

  // Chaos: one fault at a time, on a random node, then cleared.
  std::minstd_rand rng{seed};
  bool promoted = false;
  auto end = clock_type::now() + std::chrono::seconds{duration};
  auto next_report = clock_type::now() + 10s;
  std::this_thread::sleep_for(2s);
  warm_rss = rss_kb();
  while (clock_type::now() < end) {
    auto i = rng() % nodes.size();
    auto& n = nodes[i];
    auto action = rng() % 5;
    const char* name = "";
    try {
      switch (action) {
      case 0:
        name = "blackhole";
        proxies[i]->set(pgcm::test::fault_proxy::mode::blackhole);
        std::this_thread::sleep_for(std::chrono::milliseconds{1000 + rng() % 3000});
        proxies[i]->set(pgcm::test::fault_proxy::mode::pass);
        break;
      case 1:
        name = "reset";
        proxies[i]->set(pgcm::test::fault_proxy::mode::reset);
        proxies[i]->set(pgcm::test::fault_proxy::mode::pass);
        break;
      case 2:
        name = "kill+restart";
        c.stop_node(n, "immediate");
        std::this_thread::sleep_for(std::chrono::milliseconds{500 + rng() % 2000});
        c.start_node(n);
        break;
      case 3:
        name = "terminate backends";
        c.admin_sql(n, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                       "application_name = 'pgcm_soak'");
        break;
      case 4:
        if (!promoted && clock_type::now() + 20s < end && n != "node0") {
          name = "promote";
          c.promote(n);
          promoted = true;
        } else {
          name = "delay";
          proxies[i]->set(pgcm::test::fault_proxy::mode::delay, 300ms);
          std::this_thread::sleep_for(2s);
          proxies[i]->set(pgcm::test::fault_proxy::mode::pass);
        }
        break;
      }
      std::cerr << "soak: " << name << " " << n << "\n";
    } catch (const std::exception& e) {
      std::cerr << "soak: " << name << " " << n << " failed: " << e.what() << "\n";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{1000 + rng() % 2000});
    if (clock_type::now() >= next_report) {
      next_report += 10s;
      std::cerr << "soak: sent " << stats.sent << " ok " << stats.ok << " errors "
                << stats.answered_with_error() << " rss " << rss_kb() << " kB\n";
    }
  }
  for (auto& p : proxies)
    p->set(pgcm::test::fault_proxy::mode::pass);
  stop = true;
  // Every call has a deadline (query_timeout + margins): wait that long at most.
  auto wait_until = clock_type::now() + 10s;
  for (auto& w : workers)
    w.detach();
  long lost = 0;
  for (;;) {
    lost = 0;
    auto now = now_ms();
    bool busy = false;
    for (auto& s : started) {
      auto v = s.load();
      if (v != 0) {
        busy = true;
        if (now - v > 10000) ++lost;
      }
    }
    if (!busy || clock_type::now() >= wait_until) break;
    std::this_thread::sleep_for(50ms);
  }
  long end_rss = rss_kb();
  long answered = stats.ok + stats.answered_with_error();
  std::cout << "requests sent:        " << stats.sent << "\n";
  std::cout << "answered ok:          " << stats.ok << "\n";
  {
    std::lock_guard<std::mutex> guard{stats.mtx};
    for (auto& kv : stats.errors)
      std::cout << "answered " << kv.first << ": "
                << std::string(std::max<int>(0, 14 - static_cast<int>(kv.first.size())), ' ')
                << kv.second << "\n";
  }
  std::cout << "lost:                 " << lost << "\n";
  std::cout << "(fan-out entries count one error per failed node; answered calls " << answered
            << ")\n";
  std::cout << "rss start (warm):     " << warm_rss << " kB\n";
  std::cout << "rss end:              " << end_rss << " kB\n";
  std::cout.flush();
  mgr.shutdown();
  std::_Exit(lost == 0 ? 0 : 1);
}
