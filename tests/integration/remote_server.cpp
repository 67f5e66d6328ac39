// A minimal remote server for the remote-access tests: runs a manager over the
// test cluster and publishes it. Usage:
//   remote_server HOST PORT [CERT KEY CA]
// Prints "listening on PORT" once published, then runs until killed or stdin closes.
#include <iostream>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <pgcm/actors/remote_link.hpp>
#include <pgcm/messages/error.hpp>
#include <pgcm/pgcm.hpp>

#include "fixture.hpp"

int main(int argc, char** argv) {
  if (argc != 3 && argc != 6) {
    std::cerr << "usage: remote_server HOST PORT [CERT KEY CA]\n";
    return 2;
  }
  pgcm::remote_endpoint ep;
  ep.host = argv[1];
  ep.port = static_cast<std::uint16_t>(std::stoi(argv[2]));
  if (argc == 6) ep.tls = pgcm::tls_options{argv[3], argv[4], argv[5]};
  caf::actor_system_config cfg;
  pgcm::register_types(cfg);
  if (auto err = pgcm::prepare_remote(cfg, ep.tls)) {
    std::cerr << pgcm::to_error_info(err).message << "\n";
    return 2;
  }
  caf::actor_system sys{cfg};
  {
    pgcm::connection_manager mgr{sys, pgcm::test::fast_options()};
    mgr.initialize(pgcm::test::all_nodes());
    auto port = pgcm::publish_manager(sys, pgcm::manager_handle(mgr), ep);
    if (!port) {
      std::cerr << pgcm::to_error_info(port.error()).message << "\n";
      return 2;
    }
    std::cout << "listening on " << *port << std::endl;
    std::string line;
    while (std::getline(std::cin, line)) {
    }
    pgcm::unpublish_manager(pgcm::manager_handle(mgr), *port, ep.tls.enabled());
    mgr.shutdown();
  }
  return 0;
}
