#include "node_ref.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

#ifndef PGCM_BENCH_SOURCE_DIR
#define PGCM_BENCH_SOURCE_DIR "bench"
#endif

namespace bench {

namespace {

std::string getenv_str(const char* k) {
  const char* v = std::getenv(k);
  return v ? v : "";
}

bool is_executable(const std::string& p) {
  return !p.empty() && ::access(p.c_str(), X_OK) == 0;
}

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string find_in_path(const std::string& exe) {
  std::string path = getenv_str("PATH");
  std::size_t b = 0;
  while (b <= path.size()) {
    auto e = path.find(':', b);
    if (e == std::string::npos) e = path.size();
    std::string dir = path.substr(b, e - b);
    if (!dir.empty() && is_executable(dir + "/" + exe)) return dir + "/" + exe;
    b = e + 1;
  }
  return {};
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char ch : s)
    out += ch == '\'' ? std::string{"'\\''"} : std::string(1, ch);
  return out + "'";
}

std::string self_dir() {
  char buf[4096];
  auto n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return {};
  buf[n] = 0;
  std::string p = buf;
  auto slash = p.rfind('/');
  return slash == std::string::npos ? std::string{} : p.substr(0, slash);
}

node_pg_status probe_node_pg() {
  node_pg_status s;
  s.node = getenv_str("PGCM_BENCH_NODE");
  if (s.node.empty()) s.node = find_in_path("node");
  if (s.node.empty()) s.node = find_in_path("nodejs");
  if (!is_executable(s.node)) {
    s.reason = "node or pg package missing: no node executable (PATH, $PGCM_BENCH_NODE)";
    return s;
  }
  s.script = getenv_str("PGCM_BENCH_NODE_SCRIPT");
  if (s.script.empty()) s.script = std::string{PGCM_BENCH_SOURCE_DIR} + "/node_pg_ref.js";
  if (::access(s.script.c_str(), R_OK) != 0) {
    s.reason = "cannot read " + s.script + " ($PGCM_BENCH_NODE_SCRIPT)";
    return s;
  }
  // NODE_PATH: $PGCM_BENCH_NODE_MODULES, else what scripts/bench installs
  // (<build>/node-ref/node_modules next to <build>/bench/pgcm_bench), then
  // any NODE_PATH already set.
  std::string mods = getenv_str("PGCM_BENCH_NODE_MODULES");
  if (mods.empty()) {
    auto dir = self_dir();
    if (!dir.empty() && is_dir(dir + "/../node-ref/node_modules"))
      mods = dir + "/../node-ref/node_modules";
  }
  s.node_path = mods;
  if (auto np = getenv_str("NODE_PATH"); !np.empty())
    s.node_path += (s.node_path.empty() ? "" : ":") + np;
  std::string cmd = "NODE_PATH=" + shell_quote(s.node_path) + " " + shell_quote(s.node) +
                    " -e \"process.stdout.write(require('pg/package.json').version)\" 2>/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  if (p) {
    char buf[256];
    while (auto n = std::fread(buf, 1, sizeof(buf), p))
      out.append(buf, n);
    int rc = ::pclose(p);
    if (rc != 0) out.clear();
  }
  if (out.empty() || out.size() > 32) {
    s.reason = "node or pg package missing: node (" + s.node +
               ") cannot require('pg') (scripts/bench installs it with npm; or set "
               "$PGCM_BENCH_NODE_MODULES)";
    return s;
  }
  s.pg_version = out;
  s.available = true;
  return s;
}

// -- the child process ------------------------------------------------------------

class node_pg final : public contender {
public:
  node_pg(cluster_info c, std::vector<server> servers, std::string sql, int loops, int pool_max,
          bool fanout)
      : c_(std::move(c)), servers_(std::move(servers)), sql_(std::move(sql)), loops_(loops),
        pool_max_(pool_max), fanout_(fanout) {
    if (!fanout_ && servers_.size() > 1) servers_.resize(1);
  }

  ~node_pg() override { teardown(); }

  std::string name() const override { return "node-pg"; }

  std::string describe() const override {
    auto& st = find_node_pg();
    std::string pools = fanout_ ? std::to_string(servers_.size()) + " pg.Pool" : "pg.Pool";
    return "node-postgres " + st.pg_version + " (pure JS), " + pools +
           "({max: " + std::to_string(pool_max_) + "}), " + std::to_string(loops_) +
           " async loops in one Node.js process doing " +
           (fanout_ ? "Promise.all(pools.map(p => p.query(sql)))" : "pool.query(sql)") +
           " (simple protocol, not prepared); cpu/op includes the node process";
  }

  void setup() override {
    auto& st = find_node_pg();
    if (!st.available) throw std::runtime_error("node-pg: " + st.reason);
    std::signal(SIGPIPE, SIG_IGN); // a node process that died must not kill the bench
    std::string ports;
    for (auto& s : servers_)
      ports += (ports.empty() ? "" : ",") + std::to_string(s.port);
    std::vector<std::pair<std::string, std::string>> vars = {
        {"NODE_PATH", st.node_path},
        {"PGCM_NODE_REF_MODE", fanout_ ? "fanout" : "select1"},
        {"PGCM_NODE_REF_SQL", sql_},
        {"PGCM_NODE_REF_LOOPS", std::to_string(loops_)},
        {"PGCM_NODE_REF_POOL_MAX", std::to_string(pool_max_)},
        {"PGCM_NODE_REF_HOST", c_.host},
        {"PGCM_NODE_REF_PORTS", ports},
        {"PGCM_NODE_REF_USER", c_.user},
        {"PGCM_NODE_REF_PASSWORD", c_.password},
        {"PGCM_NODE_REF_DB", c_.database},
        {"PGCM_NODE_REF_SSL", "0"}, // as the raw references and pgcm here: sslmode=disable
    };
    std::vector<std::string> env_strings;
    for (char** e = environ; e && *e; ++e) {
      std::string kv = *e;
      bool ours = false;
      for (auto& [k, v] : vars)
        ours = ours || kv.compare(0, k.size() + 1, k + "=") == 0;
      if (!ours) env_strings.push_back(std::move(kv));
    }
    for (auto& [k, v] : vars)
      env_strings.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& s : env_strings)
      envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string node = st.node, script = st.script;
    std::vector<char*> argv{node.data(), script.data(), nullptr};

    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0) throw std::runtime_error("node-pg: pipe failed");
    if (::pipe2(out, O_CLOEXEC) != 0) {
      ::close(in[0]);
      ::close(in[1]);
      throw std::runtime_error("node-pg: pipe failed");
    }
    pid_ = ::fork();
    if (pid_ < 0) {
      for (int fd : {in[0], in[1], out[0], out[1]})
        ::close(fd);
      throw std::runtime_error("node-pg: fork failed");
    }
    if (pid_ == 0) {
      // Child: only async-signal-safe calls until execve.
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    to_ = in[1];
    from_ = out[0];
    std::string line;
    if (!read_line(line, now_ns() + 30'000'000'000LL))
      fail("no answer within 30 s after start (or it exited)");
    if (line != "ready") fail(line.rfind("fail ", 0) == 0 ? line.substr(5) : "said: " + line);
  }

  void teardown() override {
    if (pid_ <= 0) return;
    if (to_ >= 0) {
      static const char quit[] = "quit\n";
      (void)!::write(to_, quit, sizeof(quit) - 1);
      ::close(to_);
      to_ = -1;
    }
    // Bounded: 5 s for the pools to end, then SIGKILL.
    auto give_up = now_ns() + 5'000'000'000LL;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (now_ns() > give_up) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      ::usleep(10000);
    }
    pid_ = -1;
    if (from_ >= 0) ::close(from_);
    from_ = -1;
    buf_.clear();
  }

  window_result run(nanoseconds d) override {
    if (pid_ <= 0) throw std::runtime_error("node-pg: not started");
    char cmd[64];
    std::snprintf(cmd, sizeof(cmd), "run %.6f\n", static_cast<double>(d.count()) / 1e9);
    std::size_t len = std::strlen(cmd);
    if (::write(to_, cmd, len) != static_cast<ssize_t>(len)) fail("cannot send 'run'");
    auto deadline = now_ns() + d.count() + 60'000'000'000LL;
    std::string head, lat, err;
    if (!read_line(head, deadline) || !read_line(lat, deadline) || !read_line(err, deadline))
      fail("no result within the window + 60 s (or it exited)");
    window_result out;
    unsigned long long ops = 0, errors = 0;
    double secs = 0, cpu_ns = 0, csw = 0;
    if (std::sscanf(head.c_str(), "result %llu %llu %lf %lf %lf", &ops, &errors, &secs, &cpu_ns,
                    &csw) != 5 ||
        lat.rfind("lat", 0) != 0 || err.rfind("err", 0) != 0)
      fail("unexpected answer: " + head.substr(0, 200));
    out.ops = ops;
    out.errors = errors;
    out.seconds = secs;
    out.child_cpu_ns = static_cast<std::int64_t>(cpu_ns);
    out.child_ctxsw = static_cast<std::int64_t>(csw);
    out.lat_ns.reserve(ops);
    const char* p = lat.c_str() + 3;
    for (;;) {
      char* end = nullptr;
      auto v = std::strtoll(p, &end, 10);
      if (end == p) break;
      out.lat_ns.push_back(clamp_ns(v));
      p = end;
    }
    if (out.lat_ns.size() != ops) fail("latency count does not match ops");
    if (err.size() > 4) out.first_error = err.substr(4);
    return out;
  }

private:
  [[noreturn]] void fail(const std::string& what) {
    teardown();
    throw std::runtime_error("node-pg: " + what);
  }

  /// One line from the node process (without '\n'); false at EOF or deadline.
  bool read_line(std::string& line, std::int64_t deadline) {
    for (;;) {
      auto nl = buf_.find('\n');
      if (nl != std::string::npos) {
        line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return true;
      }
      auto left_ms = (deadline - now_ns()) / 1'000'000;
      if (left_ms <= 0) return false;
      pollfd pfd{from_, POLLIN, 0};
      int r = ::poll(&pfd, 1, static_cast<int>(std::min<std::int64_t>(left_ms, 1000)));
      if (r < 0 && errno != EINTR) return false;
      if (r <= 0) continue;
      char chunk[65536];
      auto n = ::read(from_, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  cluster_info c_;
  std::vector<server> servers_;
  std::string sql_;
  int loops_, pool_max_;
  bool fanout_;
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  std::string buf_;
};

} // namespace

const node_pg_status& find_node_pg() {
  static const node_pg_status s = probe_node_pg();
  return s;
}

contender_ptr make_node_pg(const cluster_info& c, std::vector<server> servers, std::string sql,
                           int loops, int pool_max, bool fanout) {
  return std::make_unique<node_pg>(c, std::move(servers), std::move(sql), loops, pool_max, fanout);
}

} // namespace bench
