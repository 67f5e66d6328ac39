#pragma once

// Remote access to a manager over CAF networking (optionally mutual TLS).
//
// Server: publish_manager() publishes a manager's public interface
// (manager_api_actor: the manager's API and nothing internal).
// Client: connect_manager() connects and returns a local remote_link actor
// with the same interface. The link forwards every request and tracks it:
// when the connection drops, every pending request fails at once with
// remote_disconnected (CAF 0.17 alone would only fail them at their own
// timeout), and so does every later one; connect again for a new link.

#include <cstdint>
#include <string>

#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "pgcm/messages/protocol.hpp"
#include "pgcm/remote.hpp"

namespace pgcm {

/// Checks `tls` (all three files or none; each readable) and loads CAF's
/// middleman, plus the openssl module with those files when TLS is on, into
/// `cfg`. Call before constructing the actor system. A half configuration
/// is rejected here: CAF would call std::terminate on it.
caf::error prepare_remote(caf::actor_system_config& cfg, const tls_options& tls);

/// Publishes `mgr` at `ep` (port 0 picks one; returns the port bound).
/// Without TLS only loopback addresses are accepted (CAF would otherwise
/// accept anyone with anonymous, unauthenticated encryption).
caf::expected<std::uint16_t> publish_manager(caf::actor_system& sys, manager_api_actor mgr,
                                             const remote_endpoint& ep);

/// Stops serving `mgr` on `port` (a published actor keeps the actor system,
/// and so the process, alive).
void unpublish_manager(manager_api_actor mgr, std::uint16_t port, bool tls);

/// Connects to a manager published at `ep` (blocks the caller), checks the
/// protocol version and returns a local link to it.
caf::expected<manager_api_actor> connect_manager(caf::actor_system& sys, const remote_endpoint& ep);

class connection_manager;

/// The manager a facade talks to (local manager, or the link to a remote
/// one), e.g. to publish it with publish_manager().
manager_api_actor manager_handle(const connection_manager& mgr);

} // namespace pgcm
