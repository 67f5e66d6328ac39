#pragma once

// The demo's throwaway PostgreSQL cluster: a primary and two streaming
// replicas on loopback in a new /tmp/pgcm-demo-XXXXXX directory, started and
// stopped with scripts/pg-cluster.

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <pgcm/types.hpp>

namespace pgcm::cli {

class demo_cluster {
public:
  /// Where pg-cluster is: $PGCM_PG_CLUSTER, else <exe dir>/../libexec/pgcm/pg-cluster
  /// (installed), else the source tree's scripts/pg-cluster. Throws
  /// std::runtime_error naming the places tried.
  static std::string find_script();

  /// Creates the directory. Throws std::runtime_error.
  explicit demo_cluster(std::string script);
  /// Stops the cluster and removes the directory (if stop() was not called).
  ~demo_cluster();
  demo_cluster(const demo_cluster&) = delete;
  demo_cluster& operator=(const demo_cluster&) = delete;

  /// Runs `pg-cluster start DIR` (its messages go to stderr). Throws
  /// std::runtime_error when it fails (also when interrupted).
  void start();

  /// Runs `pg-cluster stop DIR`: stops every node, removes the directory.
  void stop();

  const std::string& dir() const { return dir_; }
  const std::string& script() const { return script_; }

  /// The nodes from the cluster's env file: node0 (primary), node1, node2,
  /// with the generated password.
  std::vector<std::pair<std::string, node_config>> nodes() const;

private:
  std::map<std::string, std::string> env_file() const;

  std::string script_;
  std::string dir_;
  bool stopped_ = false;
};

} // namespace pgcm::cli
