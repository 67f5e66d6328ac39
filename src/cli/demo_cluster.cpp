#include "demo_cluster.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include <sys/wait.h>
#include <unistd.h>

#ifndef PGCM_SOURCE_SCRIPTS
#define PGCM_SOURCE_SCRIPTS ""
#endif
#ifndef PGCM_INSTALL_LIBEXEC
#define PGCM_INSTALL_LIBEXEC "libexec"
#endif

namespace pgcm::cli {

namespace {

std::string exe_dir() {
  char buf[4096];
  auto n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return {};
  std::string path{buf, static_cast<std::size_t>(n)};
  auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string{} : path.substr(0, slash);
}

/// Runs `script args...` with its stdout sent to our stderr; returns its exit status.
int run_script(const std::string& script, const std::vector<std::string>& args) {
  std::vector<std::string> all{script};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error{std::string{"fork failed: "} + std::strerror(errno)};
  if (pid == 0) {
    ::dup2(STDERR_FILENO, STDOUT_FILENO);
    ::execv(script.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      throw std::runtime_error{std::string{"waitpid failed: "} + std::strerror(errno)};
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

} // namespace

std::string demo_cluster::find_script() {
  std::vector<std::string> tried;
  auto usable = [&](const std::string& p) {
    tried.push_back(p);
    return !p.empty() && ::access(p.c_str(), X_OK) == 0;
  };
  if (const char* env = std::getenv("PGCM_PG_CLUSTER"); env != nullptr && *env != '\0') {
    if (usable(env)) return env;
    throw std::runtime_error{std::string{"PGCM_PG_CLUSTER="} + env + " is not an executable file"};
  }
  auto dir = exe_dir();
  if (!dir.empty()) {
    auto installed = dir + "/../" + PGCM_INSTALL_LIBEXEC + "/pgcm/pg-cluster";
    if (usable(installed)) return installed;
  }
  if (std::string src = PGCM_SOURCE_SCRIPTS; !src.empty() && usable(src + "/pg-cluster"))
    return src + "/pg-cluster";
  std::string list;
  for (auto& t : tried)
    list += "\n  " + t;
  throw std::runtime_error{"cannot find scripts/pg-cluster; set PGCM_PG_CLUSTER to its path "
                           "(tried:" +
                           list + ")"};
}

demo_cluster::demo_cluster(std::string script) : script_(std::move(script)) {
  char tmpl[] = "/tmp/pgcm-demo-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr)
    throw std::runtime_error{std::string{"cannot create a directory in /tmp: "} +
                             std::strerror(errno)};
  dir_ = tmpl;
}

demo_cluster::~demo_cluster() {
  try {
    stop();
  } catch (...) {
  }
}

void demo_cluster::start() {
  int rc = run_script(script_, {"start", dir_});
  if (rc != 0)
    throw std::runtime_error{"pg-cluster start " + dir_ + " failed (exit code " +
                             std::to_string(rc) + ")"};
}

void demo_cluster::stop() {
  if (stopped_) return;
  stopped_ = true;
  int rc = run_script(script_, {"stop", dir_});
  if (rc != 0)
    throw std::runtime_error{"pg-cluster stop " + dir_ + " failed (exit code " +
                             std::to_string(rc) + ")"};
}

std::map<std::string, std::string> demo_cluster::env_file() const {
  std::map<std::string, std::string> out;
  std::ifstream in{dir_ + "/cluster.env"};
  if (!in) throw std::runtime_error{"cannot read " + dir_ + "/cluster.env"};
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

std::vector<std::pair<std::string, node_config>> demo_cluster::nodes() const {
  auto env = env_file();
  auto get = [&](const std::string& key) {
    auto it = env.find(key);
    if (it == env.end() || it->second.empty())
      throw std::runtime_error{dir_ + "/cluster.env has no " + key};
    return it->second;
  };
  std::vector<std::pair<std::string, node_config>> out;
  std::string names = get("PGCM_TEST_NODES");
  std::size_t start = 0;
  while (start < names.size()) {
    auto end = names.find(' ', start);
    if (end == std::string::npos) end = names.size();
    auto id = names.substr(start, end - start);
    start = end + 1;
    if (id.empty()) continue;
    node_config c;
    c.host = get("PGCM_TEST_HOST");
    c.port = static_cast<std::uint16_t>(std::stoi(get("PGCM_TEST_PORT_" + id)));
    c.database = get("PGCM_TEST_DB");
    c.user = get("PGCM_TEST_USER");
    c.password = get("PGCM_TEST_PASSWORD");
    c.application_name = "pgcm demo";
    out.emplace_back(id, std::move(c));
  }
  return out;
}

} // namespace pgcm::cli
