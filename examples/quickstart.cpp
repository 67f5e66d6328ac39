// The spec's quickstart, in C++. Run it against a local cluster with
// scripts/quickstart (it starts one and sets the environment below); the
// defaults are the quickstart's own values.
//   PGCM_HOST, PGCM_PORT_PRIMARY, PGCM_PORT_REPLICA1, PGCM_PORT_REPLICA2,
//   PGCM_DATABASE, PGCM_USER, PG_PASSWORD
#include <cstdlib>
#include <iostream>
#include <pgcm/pgcm.hpp>
using namespace std::chrono_literals;

namespace {
std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}
std::uint16_t port_or(const char* name, std::uint16_t fallback) {
  const char* v = std::getenv(name);
  return v ? static_cast<std::uint16_t>(std::atoi(v)) : fallback;
}
} // namespace

struct replication_slot {
  std::string slot_name;
  bool active = false;
  std::optional<std::string> restart_lsn; // NULL -> nullopt
};

// How a row becomes a replication_slot; found by argument-dependent lookup.
void from_row(const pgcm::row& r, replication_slot& s) {
  s.slot_name = r.get<std::string>("slot_name");
  s.active = r.get<bool>("active");
  s.restart_lsn = r.get<std::optional<std::string>>("restart_lsn");
}

int main() {
  pgcm::manager_options opts; // defaults: 5s, 3, 10s, 30s
  opts.health_check_interval = 5s;
  opts.unhealthy_threshold = 3;
  opts.shutdown_timeout = 10s;
  opts.query_timeout = 30s;
  pgcm::connection_manager manager{opts};

  pgcm::node_config primary; // host, port=5432, database, user,
  primary.host = env_or("PGCM_HOST", "127.0.0.1");
  primary.port = port_or("PGCM_PORT_PRIMARY", 55432);
  primary.database = env_or("PGCM_DATABASE", "mydb");
  primary.user = env_or("PGCM_USER", "monitor");
  if (const char* pw = std::getenv("PG_PASSWORD")) primary.password = pw;
  pgcm::node_config replica = primary;
  replica.port = port_or("PGCM_PORT_REPLICA1", 55433);

  manager.initialize({{"primary", primary}, {"replica-1", replica}});

  const std::string sql = "SELECT slot_name, active, restart_lsn FROM pg_replication_slots";
  std::vector<replication_slot> slots = manager.query<replication_slot>("primary", sql);
  std::cout << "primary: " << slots.size() << " slots\n";

  for (const auto& result : manager.query_all<replication_slot>(sql)) {
    if (result.success)
      std::cout << result.node_id << ": " << result.data.size() << " slots\n";
    else
      std::cerr << result.node_id << ": " << result.error->message << "\n";
  }

  auto sub = manager.on(pgcm::event::node_health, [](const pgcm::node_event& e) {
    std::cout << e.node_id << ": " << pgcm::to_string(e.health->status) << "\n";
  });

  if (auto h = manager.get_health("primary"); h && h->status == pgcm::health_state::healthy)
    std::cout << "primary healthy, latency " << h->latency.count() << " us\n";
  std::cout << manager.get_healthy_nodes().size() << " nodes available\n";

  pgcm::node_config replica2 = replica;
  replica2.port = port_or("PGCM_PORT_REPLICA2", 55434);
  manager.add_node("replica-2", replica2);
  std::cout << manager.query_healthy<replication_slot>(sql).size() << " healthy results\n";
  manager.remove_node("replica-2");
  if (manager.has_node("primary"))
    std::cout << "primary: " << pgcm::to_string(manager.get_node("primary")->health.status) << "\n";

  for (const auto& s : manager.get_all_pool_stats())
    std::cout << s.node_id << ": total " << s.total_connections << ", idle " << s.idle_connections
              << ", waiting " << s.waiting_requests << "\n";
  if (auto s = manager.get_pool_stats("primary"); s && s->waiting_requests > 0)
    std::cerr << "queries waiting for connections\n";

  try {
    manager.query("primary", "SELECT pg_sleep(5)", {}, 200ms); // per-call timeout
  } catch (const pgcm::error& e) {
    if (e.code() == pgcm::errc::query_timeout) std::cerr << "query timed out: " << e.what() << "\n";
  }
  try {
    manager.query("nope", "SELECT 1");
  } catch (const pgcm::error& e) {
    std::cerr << e.what() << "\n"; // names the node, says "not found"
  }
  manager.shutdown();
}
