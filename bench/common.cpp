#include "common.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <dirent.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

namespace bench {

cluster_info read_env_file(const std::string& path) {
  std::ifstream in{path};
  if (!in) throw std::runtime_error("cannot read env file " + path);
  std::map<std::string, std::string> kv;
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    kv[line.substr(0, eq)] = line.substr(eq + 1);
  }
  auto need = [&](const std::string& k) {
    auto it = kv.find(k);
    if (it == kv.end() || it->second.empty())
      throw std::runtime_error("env file " + path + " lacks " + k +
                               " (is the cluster fully started?)");
    return it->second;
  };
  cluster_info c;
  c.host = need("PGCM_TEST_HOST");
  c.user = need("PGCM_TEST_USER");
  c.password = need("PGCM_TEST_PASSWORD");
  c.database = need("PGCM_TEST_DB");
  std::istringstream nodes{need("PGCM_TEST_NODES")};
  std::string n;
  while (nodes >> n)
    c.servers.push_back(
        server{n, static_cast<std::uint16_t>(std::stoi(need("PGCM_TEST_PORT_" + n)))});
  if (c.servers.empty()) throw std::runtime_error("env file " + path + " names no nodes");
  // The primary first.
  auto it = kv.find("PGCM_TEST_PRIMARY");
  if (it != kv.end())
    for (std::size_t i = 1; i < c.servers.size(); ++i)
      if (c.servers[i].name == it->second) std::swap(c.servers[0], c.servers[i]);
  return c;
}

std::vector<std::pair<std::string, std::string>>
conn_keywords(const cluster_info& c, const server& s, const std::string& app) {
  return {
      {"host", c.host},
      {"port", std::to_string(s.port)},
      {"dbname", c.database},
      {"user", c.user},
      {"password", c.password},
      {"application_name", app},
      {"client_encoding", "UTF8"},
      {"sslmode", "disable"},
  };
}

namespace {

long status_field(const char* key) {
  std::ifstream in{"/proc/self/status"};
  std::string line;
  auto len = std::string{key}.size();
  while (std::getline(in, line))
    if (line.compare(0, len, key) == 0) return std::atol(line.c_str() + len);
  return -1;
}

} // namespace

long rss_kib() {
  return status_field("VmRSS:");
}

int thread_count() {
  return static_cast<int>(status_field("Threads:"));
}

std::int64_t process_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

proc_usage usage_now() {
  proc_usage u;
  u.cpu_ns = process_cpu_ns();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  u.ctxsw = ru.ru_nvcsw + ru.ru_nivcsw;
  return u;
}

namespace {

std::string read_first_line(const std::string& path) {
  std::ifstream in{path};
  std::string line;
  std::getline(in, line);
  return line;
}

} // namespace

thread_snapshot snapshot_threads() {
  thread_snapshot out;
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return out;
  while (auto* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string base = std::string{"/proc/self/task/"} + e->d_name;
    thread_sample t;
    t.comm = read_first_line(base + "/comm");
    t.wchan = read_first_line(base + "/wchan");
    t.run_ns = std::atoll(read_first_line(base + "/schedstat").c_str());
    std::ifstream st{base + "/status"};
    std::string line;
    while (std::getline(st, line))
      if (line.find("ctxt_switches:") != std::string::npos)
        t.csw += std::atoll(line.c_str() + line.find(':') + 1);
    out.emplace_back(std::atoi(e->d_name), std::move(t));
  }
  closedir(d);
  return out;
}

std::vector<std::pair<std::string, proc_usage>> group_usage(const thread_snapshot& before,
                                                            const thread_snapshot& after,
                                                            proc_usage total_before,
                                                            proc_usage total_after) {
  std::map<std::string, proc_usage> g;
  auto pid = static_cast<int>(::getpid());
  proc_usage known;
  for (auto& [tid, a] : after) {
    proc_usage b0;
    for (auto& [tid0, b] : before)
      if (tid0 == tid) {
        b0.cpu_ns = b.run_ns;
        b0.ctxsw = b.csw;
      }
    std::string group;
    if (tid == pid)
      group = "main";
    else if (a.comm == "caf.clock")
      group = "caf-clock";
    else if (a.comm == "caf.actor")
      group = "caf-detached";
    else if (a.comm == "caf.multiplexer")
      group = a.wchan.find("epoll") != std::string::npos ? "pgcm-reactor" : "caf-workers";
    else
      group = "other";
    auto& u = g[group];
    u.cpu_ns += a.run_ns - b0.cpu_ns;
    u.ctxsw += a.csw - b0.ctxsw;
    known.cpu_ns += a.run_ns - b0.cpu_ns;
    known.ctxsw += a.csw - b0.ctxsw;
  }
  // Threads that ended in between (the window's client threads); the
  // process totals include them.
  proc_usage rest;
  rest.cpu_ns = (total_after.cpu_ns - total_before.cpu_ns) - known.cpu_ns;
  rest.ctxsw = (total_after.ctxsw - total_before.ctxsw) - known.ctxsw;
  g["exited-threads"] = rest;
  return {g.begin(), g.end()};
}

int socket_count() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (auto* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string path = std::string{"/proc/self/fd/"} + e->d_name;
    char target[256];
    auto len = ::readlink(path.c_str(), target, sizeof(target) - 1);
    if (len <= 0) continue;
    target[len] = 0;
    if (std::string{target}.rfind("socket:", 0) == 0) ++n;
  }
  closedir(d);
  return n;
}

idle_cpu measure_idle(double seconds, double probe_seconds) {
  idle_cpu out;
  auto cpu0 = process_cpu_ns();
  auto t0 = now_ns();
  auto last_cpu = cpu0;
  auto last_t = t0;
  double left = seconds;
  int k = 0;
  while (left > 1e-3) {
    double step = std::min(probe_seconds, left);
    std::this_thread::sleep_for(std::chrono::duration<double>(step));
    left -= step;
    auto cpu = process_cpu_ns();
    auto t = now_ns();
    double pct = 100.0 * static_cast<double>(cpu - last_cpu) / static_cast<double>(t - last_t);
    out.probes.push_back(pct);
    out.max_probe_pct = std::max(out.max_probe_pct, pct);
    std::fprintf(stderr, "  probe %d: %.3f%% of a core over %.1f s\n", ++k, pct, step);
    last_cpu = cpu;
    last_t = t;
  }
  out.avg_pct = 100.0 * static_cast<double>(last_cpu - cpu0) / static_cast<double>(last_t - t0);
  return out;
}

void print_idle_json(const idle_cpu& c) {
  std::printf("\"cpu_pct\":%.4f,\"cpu_pct_max_probe\":%.4f,\"probes\":[", c.avg_pct,
              c.max_probe_pct);
  for (std::size_t i = 0; i < c.probes.size(); ++i)
    std::printf("%s%.4f", i ? "," : "", c.probes[i]);
  std::printf("]");
}

} // namespace bench
