#include "http_endpoint.hpp"

#include <condition_variable>
#include <deque>
#include <list>
#include <mutex>
#include <thread>
#include <utility>

#include <httplib.h>

#include <pgcm/connection_manager.hpp>
#include <pgcm/metrics.hpp>

#include "node_json.hpp"

namespace pgcm::cli {

namespace {

/// One /api/events stream. Guarded by event_hub::mutex_.
struct event_client {
  std::deque<std::string> queue;
  std::condition_variable wake;
  bool dropped = false; // too slow: its queue overflowed
};

/// Fans manager events out to the event streams. publish() runs on a pgcm
/// thread: it only takes a short lock, copies and notifies.
class event_hub {
public:
  event_hub(std::size_t max_clients, std::size_t max_queued)
      : max_clients_(max_clients), max_queued_(max_queued) {}

  /// A new stream, or null when max_clients are connected (or stopping).
  std::shared_ptr<event_client> join() {
    std::lock_guard<std::mutex> guard{mutex_};
    if (stopping_ || clients_.size() >= max_clients_) return nullptr;
    auto c = std::make_shared<event_client>();
    clients_.push_back(c);
    return c;
  }

  void leave(const std::shared_ptr<event_client>& c) {
    std::lock_guard<std::mutex> guard{mutex_};
    clients_.remove(c);
  }

  void publish(const std::string& json) {
    std::lock_guard<std::mutex> guard{mutex_};
    for (auto& c : clients_) {
      if (c->dropped) continue;
      if (c->queue.size() >= max_queued_) {
        c->dropped = true;
        c->queue.clear();
      } else {
        c->queue.push_back(json);
      }
      c->wake.notify_one();
    }
  }

  enum class wait_result { events, heartbeat, closed };

  /// Waits up to `heartbeat` for events for `c`; moves them to `out`.
  wait_result wait(event_client& c, std::deque<std::string>& out,
                   std::chrono::milliseconds heartbeat) {
    std::unique_lock<std::mutex> lock{mutex_};
    c.wake.wait_for(lock, heartbeat, [&] { return stopping_ || c.dropped || !c.queue.empty(); });
    if (stopping_ || c.dropped) return wait_result::closed;
    if (c.queue.empty()) return wait_result::heartbeat;
    out.swap(c.queue);
    return wait_result::events;
  }

  void stop() {
    std::lock_guard<std::mutex> guard{mutex_};
    stopping_ = true;
    for (auto& c : clients_)
      c->wake.notify_one();
  }

private:
  const std::size_t max_clients_;
  const std::size_t max_queued_;
  std::mutex mutex_;
  std::list<std::shared_ptr<event_client>> clients_;
  bool stopping_ = false;
};

bool is_known_path(const std::string& path) {
  return path == "/" || path == "/metrics" || path == "/api/health" || path == "/api/events";
}

void plain(httplib::Response& res, int status, const std::string& text) {
  res.status = status;
  res.set_content(text + "\n", "text/plain; charset=utf-8");
}

} // namespace

struct http_endpoint::impl {
  connection_manager& mgr;
  http_options opts;
  std::unique_ptr<httplib::Server> server;
  std::shared_ptr<event_hub> hub;
  subscription events;
  std::thread thread;
  int port = 0;
  std::once_flag stopped;

  impl(connection_manager& m, http_options o) : mgr(m), opts(std::move(o)) {}

  void routes();
};

void http_endpoint::impl::routes() {
  auto& svr = *server;
  // One request per connection: an idle keep-alive connection would be
  // polled every 10 ms by cpp-httplib 0.11 while the page waits.
  svr.set_keep_alive_max_count(1);
  svr.set_read_timeout(std::chrono::seconds{5});
  svr.set_write_timeout(std::chrono::seconds{5});
  // Event streams hold a thread each: enough for every allowed stream plus
  // the other requests.
  auto threads = opts.max_event_clients + 8;
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };

  svr.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    if (is_known_path(req.path) && req.method != "GET" && req.method != "HEAD") {
      res.set_header("Allow", "GET, HEAD");
      plain(res, 405, "405 method not allowed: " + req.method + " " + req.path + " (use GET)");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404)
      plain(res, 404,
            "404 not found: " + req.path + " (try /, /metrics, /api/health, /api/events)");
  });
  svr.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        plain(res, 503, "503 unavailable: " + what);
      });

  svr.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-cache");
    res.set_content(status_page_html(), "text/html; charset=utf-8");
  });
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(prometheus_metrics(mgr), prometheus_content_type);
  });
  svr.Get("/api/health", [this](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-cache");
    res.set_content(health_json(mgr.get_nodes()) + "\n", "application/json");
  });
  svr.Get("/api/events", [this](const httplib::Request&, httplib::Response& res) {
    auto client = hub->join();
    if (!client) {
      plain(res, 503,
            "503 too many event streams (at most " + std::to_string(opts.max_event_clients) + ")");
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    auto hub_ref = hub;
    auto heartbeat = opts.heartbeat;
    auto batch = std::make_shared<std::deque<std::string>>();
    auto started = std::make_shared<bool>(false);
    res.set_chunked_content_provider(
        "text/event-stream",
        [hub_ref, client, heartbeat, batch, started](std::size_t, httplib::DataSink& sink) {
          std::string out;
          if (!*started) {
            *started = true;
            out = "retry: 2000\n: connected\n\n";
            return sink.write(out.data(), out.size());
          }
          switch (hub_ref->wait(*client, *batch, heartbeat)) {
          case event_hub::wait_result::closed:
            sink.done();
            return true;
          case event_hub::wait_result::heartbeat:
            out = ": heartbeat\n\n";
            break;
          case event_hub::wait_result::events:
            for (auto& e : *batch) {
              out += "data: ";
              out += e;
              out += "\n\n";
            }
            batch->clear();
            break;
          }
          // False when the client is gone: cpp-httplib then closes the stream.
          return sink.write(out.data(), out.size());
        },
        [hub_ref, client](bool) { hub_ref->leave(client); });
  });
}

http_endpoint::http_endpoint(connection_manager& mgr, http_options opts)
    : impl_(std::make_unique<impl>(mgr, std::move(opts))) {
  auto& d = *impl_;
  auto where = d.opts.host + ":" + std::to_string(d.opts.port);
  if (!d.opts.tls.certificate.empty()) {
    auto ssl = std::make_unique<httplib::SSLServer>(
        d.opts.tls.certificate.c_str(), d.opts.tls.key.c_str(),
        d.opts.tls.ca.empty() ? nullptr : d.opts.tls.ca.c_str());
    if (!ssl->is_valid())
      throw error{errc::invalid_config,
                  "--http " + where + ": cannot load the TLS certificate, key or CA (" +
                      d.opts.tls.certificate + ", " + d.opts.tls.key +
                      (d.opts.tls.ca.empty() ? "" : ", " + d.opts.tls.ca) + ")"};
    d.server = std::move(ssl);
  } else {
    d.server = std::make_unique<httplib::Server>();
  }
  d.hub = std::make_shared<event_hub>(d.opts.max_event_clients, d.opts.max_queued_events);
  d.routes();
  if (d.opts.port == 0) {
    d.port = d.server->bind_to_any_port(d.opts.host);
  } else {
    d.port = d.server->bind_to_port(d.opts.host, d.opts.port) ? d.opts.port : -1;
  }
  if (d.port <= 0)
    throw error{errc::invalid_config,
                "--http " + where + ": cannot listen there (address in use or not local?)"};
  auto hub = d.hub;
  d.events = mgr.on_any([hub](const node_event& ev) {
    hub->publish(event_json(ev, std::chrono::system_clock::now()));
  });
  d.thread = std::thread{[srv = d.server.get()] { srv->listen_after_bind(); }};
  // cpp-httplib's stop() does nothing before the server runs: wait for it.
  for (int i = 0; i < 5000 && !d.server->is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
}

http_endpoint::~http_endpoint() {
  stop();
}

std::uint16_t http_endpoint::port() const {
  return static_cast<std::uint16_t>(impl_->port);
}

void http_endpoint::stop() {
  std::call_once(impl_->stopped, [this] {
    auto& d = *impl_;
    d.events.unsubscribe();
    d.hub->stop();
    d.server->stop();
    if (d.thread.joinable()) d.thread.join();
  });
}

} // namespace pgcm::cli
