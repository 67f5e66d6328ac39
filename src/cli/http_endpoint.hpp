#pragma once

// The HTTP side of `pgcm serve --http HOST:PORT` (cpp-httplib):
//   GET /            the status page (self-contained HTML, live from /api/events)
//   GET /metrics     prometheus_metrics() (text format 0.0.4)
//   GET /api/health  the JSON of `pgcm health --json`
//   GET /api/events  Server-Sent Events: one `data:` line of event_json() per
//                    manager event, a `: heartbeat` comment every 15 s
// Other paths answer 404, other methods on these paths 405.
//
// Guarantees: the manager is never blocked by a client. Events are copied
// into a bounded queue per event client under a short lock; a client whose
// queue is full (too slow) or whose connection fails is dropped. At most
// max_event_clients streams at once; more are answered 503. Idle streams
// wait on a condition variable (no polling).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <pgcm/remote.hpp>

namespace pgcm {
class connection_manager;
}

namespace pgcm::cli {

struct http_options {
  std::string host = "127.0.0.1";
  /// 0: any free port (see http_endpoint::port()).
  std::uint16_t port = 0;
  /// certificate + key: HTTPS; with ca too: clients need a certificate from it.
  tls_options tls;
  std::size_t max_event_clients = 128;
  /// Events queued per client before it counts as too slow and is dropped.
  std::size_t max_queued_events = 1024;
  std::chrono::milliseconds heartbeat{15000};
};

class http_endpoint {
public:
  /// Binds and starts serving on a thread of its own. Throws pgcm::error
  /// (errc::invalid_config) if the address cannot be bound or the TLS files
  /// cannot be loaded. `mgr` must outlive this object.
  http_endpoint(connection_manager& mgr, http_options opts);
  /// Stops (see stop()).
  ~http_endpoint();
  http_endpoint(const http_endpoint&) = delete;
  http_endpoint& operator=(const http_endpoint&) = delete;

  /// The port it listens on.
  std::uint16_t port() const;

  /// Ends every event stream, stops listening and waits for the server's
  /// threads; idempotent.
  void stop();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The status page (one HTML document, no external resources).
const std::string& status_page_html();

} // namespace pgcm::cli
