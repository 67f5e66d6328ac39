// pgcm from an actor-based application: spawn the manager actor in your own
// actor_system and talk to it with messages (protocol: messages/protocol.hpp).
// Environment: PGCM_HOST, PGCM_PORT_PRIMARY, PGCM_PORT_REPLICA1, PGCM_DATABASE,
// PGCM_USER, PG_PASSWORD.
#include <cstdlib>
#include <iostream>

#include <caf/all.hpp>

#include <pgcm/actors/cluster_manager.hpp>
#include <pgcm/messages/error.hpp>
#include <pgcm/messages/protocol.hpp>
#include <pgcm/pgcm.hpp>

using namespace std::chrono_literals;

namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

// An event subscriber: prints health changes and stops after the manager
// removed every node.
pgcm::event_subscriber_actor::behavior_type printer(pgcm::event_subscriber_actor::pointer self) {
  return {
      [=](pgcm::event_atom, const pgcm::node_event& e) {
        if (e.type == pgcm::event::node_health)
          caf::aout(self) << "event: " << e.node_id << " is " << pgcm::to_string(e.health->status)
                          << " (" << pgcm::to_string(e.health->role) << ")\n";
        else if (e.type == pgcm::event::node_removed)
          caf::aout(self) << "event: " << e.node_id << " removed\n";
      },
  };
}

// The client: initializes two nodes, fans a query out, runs one on the
// primary's handle, prints, shuts down.
void client(caf::event_based_actor* self, pgcm::manager_api_actor mgr) {
  pgcm::node_config primary;
  primary.host = env_or("PGCM_HOST", "127.0.0.1");
  primary.port = static_cast<std::uint16_t>(std::atoi(env_or("PGCM_PORT_PRIMARY", "5432").c_str()));
  primary.database = env_or("PGCM_DATABASE", "postgres");
  primary.user = env_or("PGCM_USER", "postgres");
  if (const char* pw = std::getenv("PG_PASSWORD")) primary.password = pw;
  auto replica = primary;
  replica.port =
      static_cast<std::uint16_t>(std::atoi(env_or("PGCM_PORT_REPLICA1", "5433").c_str()));
  std::vector<pgcm::node_entry> nodes{{"primary", primary}, {"replica-1", replica}};
  auto on_error = [=](caf::error& err) {
    std::cerr << "error: " << pgcm::to_error_info(err).message << "\n";
    self->send(mgr, pgcm::shutdown_atom::value);
    self->quit();
  };
  auto shut_down = [=] {
    self->request(mgr, 20s, pgcm::shutdown_atom::value)
        .then([=](pgcm::ok_atom) { caf::aout(self) << "shut down\n"; }, on_error);
  };
  // The fast path for queries on one node: ask the manager for the node's
  // handle once, then send queries straight to it (after shutting_down or
  // request_receiver_down from it, ask the manager again).
  auto query_on_handle = [=] {
    self->request(mgr, 5s, pgcm::route_atom::value, pgcm::node_atom::value, std::string{"primary"})
        .then(
            [=](pgcm::node_api_actor& node) {
              self->request(node, 10s, pgcm::query_atom::value, std::string{"SELECT $1::int AS n"},
                            std::vector<pgcm::param>{7}, caf::timespan{5s})
                  .then(
                      [=](pgcm::result_set& rs) {
                        caf::aout(self)
                            << "primary via its handle: n=" << rs[0].get<int>("n") << "\n";
                        shut_down();
                      },
                      on_error);
            },
            on_error);
  };
  self->request(mgr, 30s, pgcm::initialize_atom::value, nodes)
      .then(
          [=](pgcm::ok_atom) {
            self->request(mgr, 10s, pgcm::query_all_atom::value,
                          std::string{"SELECT pg_is_in_recovery() AS standby, $1::int AS n"},
                          std::vector<pgcm::param>{42}, caf::timespan{5s}, false)
                .then(
                    [=](std::vector<pgcm::node_result_set>& results) {
                      for (auto& r : results) {
                        if (r.success)
                          caf::aout(self)
                              << r.node_id << ": standby=" << r.data[0].get<bool>("standby")
                              << " n=" << r.data[0].get<int>("n") << "\n";
                        else
                          caf::aout(self) << r.node_id << ": " << r.error->message << "\n";
                      }
                      query_on_handle();
                    },
                    on_error);
          },
          on_error);
}

} // namespace

int main() {
  caf::actor_system_config cfg;
  pgcm::register_types(cfg);
  pgcm::use_pgcm_scheduler(cfg); // optional: the scheduler the facade uses
  caf::actor_system sys{cfg};
  pgcm::manager_options opts;
  opts.health_check_interval = 1s;
  auto mgr = pgcm::spawn_manager(sys, opts);
  if (!mgr) {
    std::cerr << sys.render(mgr.error()) << "\n";
    return 1;
  }
  auto sub = sys.spawn(printer);
  caf::anon_send(*mgr, pgcm::subscribe_atom::value, sub);
  sys.spawn(client, *mgr);
  // The subscriber would live forever: stop it once the manager is gone.
  sys.spawn([mgr = *mgr, sub](caf::event_based_actor* self) {
    self->monitor(mgr);
    self->set_down_handler(
        [=](const caf::down_msg&) { self->send_exit(sub, caf::exit_reason::user_shutdown); });
  });
}
