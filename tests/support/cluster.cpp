#include "cluster.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include <sys/wait.h>
#include <unistd.h>

namespace pgcm::test {

namespace {

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  auto first = s.find_first_not_of(ws);
  if (first == std::string::npos) return {};
  return s.substr(first, s.find_last_not_of(ws) - first + 1);
}

// Single-quotes an argument for /bin/sh.
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  out += '\'';
  return out;
}

} // namespace

cluster cluster::load() {
  const char* path = std::getenv("PGCM_TEST_ENV_FILE");
  if (path == nullptr || *path == '\0')
    throw std::runtime_error(
        "pgcm::test::cluster: PGCM_TEST_ENV_FILE is not set; run the integration tests "
        "through ctest (fixture pgcm_cluster) or start a cluster with "
        "scripts/test-cluster-up BUILD_DIR and export "
        "PGCM_TEST_ENV_FILE=BUILD_DIR/test-cluster.env");
  std::ifstream in(path);
  if (!in)
    throw std::runtime_error(std::string("pgcm::test::cluster: cannot read env file '") + path +
                             "' named by PGCM_TEST_ENV_FILE (is the cluster up?)");
  cluster result;
  result.env_file_ = path;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    auto eq = line.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    result.values_[line.substr(0, eq)] = line.substr(eq + 1);
  }
  for (const char* key : {"PGCM_TEST_HOST", "PGCM_TEST_USER", "PGCM_TEST_PASSWORD", "PGCM_TEST_DB",
                          "PGCM_TEST_NODES", "PGCM_TEST_CLUSTER_DIR", "PGCM_TEST_SCRIPT"})
    result.required(key); // throws if the file is incomplete (cluster still starting?)
  return result;
}

cluster& cluster::get() {
  // If load() throws, the next call tries again.
  static cluster instance = load();
  return instance;
}

std::string cluster::required(const std::string& key) const {
  auto i = values_.find(key);
  if (i == values_.end() || i->second.empty())
    throw std::runtime_error("pgcm::test::cluster: key " + key + " missing in env file '" +
                             env_file_ + "'");
  return i->second;
}

std::string cluster::value(const std::string& key) const {
  auto i = values_.find(key);
  return i == values_.end() ? std::string{} : i->second;
}

std::string cluster::host() const {
  return required("PGCM_TEST_HOST");
}
std::string cluster::user() const {
  return required("PGCM_TEST_USER");
}
std::string cluster::password() const {
  return required("PGCM_TEST_PASSWORD");
}
std::string cluster::database() const {
  return required("PGCM_TEST_DB");
}

std::vector<std::string> cluster::nodes() const {
  std::vector<std::string> result;
  std::istringstream in(required("PGCM_TEST_NODES"));
  for (std::string n; in >> n;)
    result.push_back(n);
  return result;
}

uint16_t cluster::port(const std::string& node) const {
  auto str = value("PGCM_TEST_PORT_" + node);
  if (str.empty()) throw std::runtime_error("pgcm::test::cluster: no port for node '" + node + "'");
  unsigned long p = 0;
  try {
    p = std::stoul(str);
  } catch (const std::exception&) {
    p = 0;
  }
  if (p == 0 || p > 65535)
    throw std::runtime_error("pgcm::test::cluster: bad port '" + str + "' for node '" + node + "'");
  return static_cast<uint16_t>(p);
}

std::string cluster::run_script(const std::string& args) {
  // stdout is returned; stderr goes to a temporary file, is put into the
  // exception on failure and copied to std::cerr on success (script messages).
  char err_path[] = "/tmp/pgcm-test-stderr-XXXXXX";
  int fd = ::mkstemp(err_path);
  if (fd < 0) throw std::runtime_error("pgcm::test::cluster: mkstemp failed");
  ::close(fd);
  auto cmd = shell_quote(required("PGCM_TEST_SCRIPT")) + " " + args;
  auto full_cmd = cmd + " 2>" + shell_quote(err_path);
  std::fflush(nullptr);
  FILE* pipe = ::popen(full_cmd.c_str(), "r");
  if (pipe == nullptr) {
    ::unlink(err_path);
    throw std::runtime_error("pgcm::test::cluster: popen failed for: " + cmd);
  }
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0)
    out.append(buf, n);
  int status = ::pclose(pipe);
  std::string err;
  {
    std::ifstream in(err_path);
    std::ostringstream ss;
    ss << in.rdbuf();
    err = trim(ss.str());
  }
  ::unlink(err_path);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string how = status == -1          ? "pclose failed"
                      : WIFEXITED(status)   ? "exit code " + std::to_string(WEXITSTATUS(status))
                      : WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                            : "status " + std::to_string(status);
    throw std::runtime_error("pgcm::test::cluster: command failed (" + how + "): " + cmd +
                             (err.empty() ? "" : "\n" + err) +
                             (trim(out).empty() ? "" : "\nstdout: " + trim(out)));
  }
  if (!err.empty()) std::cerr << err << std::endl;
  return out;
}

void cluster::stop_node(const std::string& node, const std::string& mode) {
  run_script("stop-node " + shell_quote(required("PGCM_TEST_CLUSTER_DIR")) + " " +
             shell_quote(node) + " " + shell_quote(mode));
}

void cluster::start_node(const std::string& node) {
  run_script("start-node " + shell_quote(required("PGCM_TEST_CLUSTER_DIR")) + " " +
             shell_quote(node));
}

void cluster::promote(const std::string& node) {
  run_script("promote " + shell_quote(required("PGCM_TEST_CLUSTER_DIR")) + " " + shell_quote(node));
}

void cluster::rebuild_node(const std::string& node, const std::string& primary) {
  run_script("rebuild-node " + shell_quote(required("PGCM_TEST_CLUSTER_DIR")) + " " +
             shell_quote(node) + " " + shell_quote(primary));
}

std::string cluster::admin_sql(const std::string& node, const std::string& sql) {
  return trim(run_script("psql " + shell_quote(required("PGCM_TEST_CLUSTER_DIR")) + " " +
                         shell_quote(node) + " -XAtq -v ON_ERROR_STOP=1 -c " + shell_quote(sql)));
}

} // namespace pgcm::test
