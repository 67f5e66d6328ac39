// Access to the throwaway PostgreSQL test cluster started by scripts/pg-cluster
// (via scripts/test-cluster-up). The cluster's env file is named by the
// environment variable PGCM_TEST_ENV_FILE; CTest sets it for integration tests.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace pgcm::test {

class cluster {
public:
  // Reads the file named by env var PGCM_TEST_ENV_FILE (KEY=VALUE lines) on first
  // use; throws std::runtime_error with a clear message if unset/missing/incomplete.
  static cluster& get();

  std::string host() const;                     // PGCM_TEST_HOST (127.0.0.1)
  std::string user() const;                     // PGCM_TEST_USER
  std::string password() const;                 // PGCM_TEST_PASSWORD
  std::string database() const;                 // PGCM_TEST_DB
  std::vector<std::string> nodes() const;       // "node0", "node1", ... (node0 = initial primary)
  uint16_t port(const std::string& node) const; // throws for an unknown node
  std::string value(const std::string& key) const; // any key, "" if absent

  // Node control through the pg-cluster script; each throws std::runtime_error
  // (with the script's output) if the script fails.
  void stop_node(const std::string& node, const std::string& mode = "fast");
  void start_node(const std::string& node); // same port; waits until it accepts connections
  void promote(const std::string& node);    // waits until pg_is_in_recovery() is false
  // `node` anew as a standby of `primary` (base backup), streaming when this returns.
  void rebuild_node(const std::string& node, const std::string& primary);

  // Runs SQL as the admin superuser on the node (psql -XAtq -c SQL via the
  // script, database PGCM_TEST_DB), returns trimmed stdout; throws on non-zero exit.
  std::string admin_sql(const std::string& node, const std::string& sql);

private:
  cluster() = default;
  static cluster load();
  std::string required(const std::string& key) const;
  std::string run_script(const std::string& args);

  std::string env_file_;
  std::map<std::string, std::string> values_;
};

} // namespace pgcm::test
