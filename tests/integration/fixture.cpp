#include "fixture.hpp"

#include <thread>

#include <unistd.h>

namespace pgcm::test {

const std::string& app_name() {
  static const std::string name = "pgcm_test_" + std::to_string(::getpid());
  return name;
}

node_config node(const std::string& name) {
  auto& c = cluster::get();
  node_config cfg;
  cfg.host = c.host();
  cfg.port = c.port(name);
  cfg.database = c.database();
  cfg.user = c.user();
  cfg.password = c.password();
  cfg.application_name = app_name();
  return cfg;
}

std::vector<std::pair<std::string, node_config>> all_nodes() {
  std::vector<std::pair<std::string, node_config>> out;
  for (auto& n : cluster::get().nodes())
    out.emplace_back(n, node(n));
  return out;
}

manager_options fast_options() {
  manager_options o;
  o.health_check_interval = std::chrono::milliseconds{200};
  o.health_check_timeout = std::chrono::milliseconds{1000};
  o.unhealthy_threshold = 2;
  o.shutdown_timeout = std::chrono::milliseconds{3000};
  o.query_timeout = std::chrono::milliseconds{10000};
  o.connect_timeout = std::chrono::milliseconds{2000};
  o.reconnect_backoff_initial = std::chrono::milliseconds{50};
  o.reconnect_backoff_max = std::chrono::milliseconds{500};
  return o;
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred())
      return true;
    if (std::chrono::steady_clock::now() >= until)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
}

int server_connections(const std::string& node, const std::string& state) {
  std::string sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = '"
                    + app_name() + "' AND backend_type = 'client backend'";
  if (!state.empty())
    sql += " AND state = '" + state + "'";
  return std::stoi(cluster::get().admin_sql(node, sql));
}

long long ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now()
                                                               - start)
    .count();
}

} // namespace pgcm::test
