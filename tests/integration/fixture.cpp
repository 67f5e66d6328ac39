#include "fixture.hpp"

#include <iostream>
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

std::unique_ptr<connection_manager> node0_manager(pool_config pool, manager_options opts) {
  auto mgr = std::make_unique<connection_manager>(opts);
  auto cfg = node("node0");
  cfg.pool = pool;
  mgr->initialize({{"node0", cfg}});
  return mgr;
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
}

int server_connections(const std::string& node, const std::string& state) {
  std::string sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = '" +
                    app_name() + "' AND backend_type = 'client backend'";
  if (!state.empty()) sql += " AND state = '" + state + "'";
  return std::stoi(cluster::get().admin_sql(node, sql));
}

bool answers(connection_manager& mgr, const std::string& node,
             std::optional<std::chrono::milliseconds> timeout, std::string* last_error) {
  try {
    return mgr.query(node, "SELECT 1", {}, timeout)[0].get<int>(0) == 1;
  } catch (const error& e) {
    if (last_error != nullptr) *last_error = e.what();
    return false;
  }
}

long long ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

stopped_node::stopped_node(std::string name) : name_(std::move(name)) {
  cluster::get().stop_node(name_);
}

stopped_node::~stopped_node() {
  try {
    start();
  } catch (const std::exception& e) {
    std::cerr << "stopped_node: could not restart " << name_ << ": " << e.what() << "\n";
  }
}

void stopped_node::start() {
  if (!stopped_) return;
  stopped_ = false;
  cluster::get().start_node(name_);
}

void event_recorder::operator()(const node_event& ev) {
  std::lock_guard<std::mutex> guard{mtx_};
  events_.push_back(ev);
}

std::vector<node_event> event_recorder::all() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return events_;
}

std::vector<node_event> event_recorder::of(const std::string& node) const {
  std::lock_guard<std::mutex> guard{mtx_};
  std::vector<node_event> out;
  for (auto& e : events_)
    if (e.node_id == node) out.push_back(e);
  return out;
}

std::vector<node_event> event_recorder::of(const std::string& node, event type) const {
  std::vector<node_event> out;
  for (auto& e : of(node))
    if (e.type == type) out.push_back(e);
  return out;
}

std::size_t event_recorder::count(const std::string& node, event type) const {
  return of(node, type).size();
}

std::vector<health_state> event_recorder::states(const std::string& node) const {
  std::vector<health_state> out;
  for (auto& e : of(node, event::node_health))
    out.push_back(e.health ? e.health->status : health_state::unknown);
  return out;
}

std::vector<health_status> event_recorder::health(const std::string& node) const {
  std::vector<health_status> out;
  for (auto& e : of(node, event::node_health))
    if (e.health) out.push_back(*e.health);
  return out;
}

} // namespace pgcm::test
