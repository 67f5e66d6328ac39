// pgcm serve: runs the manager for the configured nodes and publishes it over
// CAF networking (--listen) and/or HTTP (--http: status page, /metrics,
// /api/health, /api/events); TLS with the --tls-* flags, else loopback only.

#include <iostream>
#include <memory>
#include <optional>

#include <poll.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <pgcm/actors/remote_link.hpp>
#include <pgcm/messages/error.hpp>
#include <pgcm/messages/protocol.hpp>
#include <pgcm/scheduler.hpp>

#include "cli_logging.hpp"
#include "commands.hpp"
#include "event_log.hpp"
#include "http_endpoint.hpp"
#include "manager_source.hpp"
#include "shutdown_signals.hpp"

namespace pgcm::cli {

int run_serve(const cli_options& opts) {
  setup_logging(opts, false);
  auto spec = load_cluster_spec(opts, process_env());
  for (auto& w : spec.warnings)
    std::cerr << "pgcm: warning: " << w << '\n';
  std::optional<remote_endpoint> ep;
  if (opts.listen) {
    ep = parse_endpoint("--listen", *opts.listen, opts);
    if (!ep->tls.enabled() && !is_loopback(ep->host))
      throw usage_error{"--listen " + *opts.listen +
                        ": refusing to serve a non-loopback address without TLS (CAF would "
                        "accept anyone with anonymous encryption); give --tls-cert, --tls-key and "
                        "--tls-ca"};
  }
  std::optional<remote_endpoint> http_ep;
  if (opts.http) {
    http_ep = parse_endpoint("--http", *opts.http, opts);
    if (!http_ep->tls.enabled() && !is_loopback(http_ep->host))
      throw usage_error{"--http " + *opts.http +
                        ": refusing to serve a non-loopback address without TLS (anyone could "
                        "read the cluster's state); give --tls-cert and --tls-key (and --tls-ca "
                        "to require client certificates)"};
  }
  caf::actor_system_config cfg;
  register_types(cfg);
  use_pgcm_scheduler(cfg);
  if (ep)
    if (auto err = prepare_remote(cfg, ep->tls)) throw error{to_error_info(err)};
  auto events = open_event_log(opts);
  caf::actor_system sys{cfg};
  int rc = 0;
  {
    connection_manager mgr{sys, spec.options};
    std::optional<event_log_feed> feed;
    if (events) feed.emplace(mgr, *events);
    stop_hook on_stop{[&mgr] { mgr.shutdown(); }};
    start_manager(mgr, spec);
    auto handle = manager_handle(mgr);
    std::optional<std::uint16_t> port;
    if (ep) {
      auto published = publish_manager(sys, handle, *ep);
      if (!published) throw error{to_error_info(published.error())};
      port = *published;
      std::cout << "pgcm: serving " << spec.nodes.size() << " nodes on " << ep->host << ":" << *port
                << (ep->tls.enabled() ? " (mutual TLS)" : "") << std::endl;
    }
    std::unique_ptr<http_endpoint> http;
    if (http_ep) {
      http_options ho;
      ho.host = http_ep->host;
      ho.port = http_ep->port;
      ho.tls = http_ep->tls;
      http = std::make_unique<http_endpoint>(mgr, ho);
      bool v6 = http_ep->host.find(':') != std::string::npos;
      std::cout << "pgcm: http on " << (ho.tls.enabled() ? "https" : "http") << "://"
                << (v6 ? "[" + ho.host + "]" : ho.host) << ":" << http->port() << "/"
                << (ho.tls.ca.empty() ? "" : " (client certificates required)") << std::endl;
    }
    while (!stop_requested()) {
      pollfd p{wake_fd(), POLLIN, 0};
      ::poll(&p, 1, 1000);
      drain_wake_fd();
    }
    if (http) http->stop();
    if (ep) unpublish_manager(handle, *port, ep->tls.enabled());
    mgr.shutdown();
    if (feed) feed->finish(milliseconds{2000}); // the node:removed events of the shutdown
  }
  return rc;
}

} // namespace pgcm::cli
