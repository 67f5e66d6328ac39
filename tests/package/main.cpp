#include <iostream>
#include <pgcm/actors/cluster_manager.hpp>
#include <pgcm/pgcm.hpp>

int main() {
  // Validation runs without any server: a config error names node and field.
  pgcm::connection_manager manager;
  pgcm::node_config bad;
  bad.host = "127.0.0.1";
  bad.port = 0;
  try {
    manager.initialize({{"n1", bad}});
  } catch (const pgcm::error& e) {
    std::cout << pgcm::to_string(e.code()) << ": " << e.what() << "\n";
    return e.code() == pgcm::errc::invalid_config ? 0 : 1;
  }
  return 1;
}
