#include "pgcm/actors/remote_link.hpp"

#include <fstream>
#include <functional>
#include <unordered_map>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/publish.hpp>
#include <caf/io/remote_actor.hpp>
#include <caf/io/unpublish.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/openssl/remote_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "log.hpp"
#include "pgcm/messages/error.hpp"

namespace pgcm {

bool is_loopback(const std::string& host) {
  if (host == "localhost") return true;
  in_addr a4{};
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  in6_addr a6{};
  if (inet_pton(AF_INET6, host.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

namespace {

std::string endpoint_name(const remote_endpoint& ep) {
  return ep.host + ":" + std::to_string(ep.port);
}

caf::error tls_file_error(const char* what, const std::string& path) {
  return make_error(errc::invalid_config,
                    std::string{"TLS "} + what + " file \"" + path + "\" cannot be read");
}

std::string openssl_reason() {
  auto code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

/// Loads the three files the way CAF will, so that a bad or mismatched file
/// is a clear config error here and not an exception in a CAF thread
/// (std::terminate) later.
caf::error check_tls_files(const tls_options& tls) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx{SSL_CTX_new(TLS_method()), SSL_CTX_free};
  if (!ctx)
    return make_error(errc::internal, "cannot create an OpenSSL context: " + openssl_reason());
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), tls.certificate.c_str()) != 1)
    return make_error(errc::invalid_config,
                      "TLS certificate file \"" + tls.certificate +
                          "\" is not a usable certificate: " + openssl_reason());
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), tls.key.c_str(), SSL_FILETYPE_PEM) != 1)
    return make_error(errc::invalid_config,
                      "TLS key file \"" + tls.key +
                          "\" is not a usable private key: " + openssl_reason());
  if (SSL_CTX_check_private_key(ctx.get()) != 1)
    return make_error(errc::invalid_config, "TLS key \"" + tls.key +
                                                "\" does not match certificate \"" +
                                                tls.certificate + "\"");
  if (SSL_CTX_load_verify_locations(ctx.get(), tls.ca.c_str(), nullptr) != 1)
    return make_error(errc::invalid_config,
                      "TLS CA file \"" + tls.ca +
                          "\" is not a usable CA certificate: " + openssl_reason());
  return caf::none;
}

// -- the link -----------------------------------------------------------------

struct link_data {
  manager_api_actor remote;
  std::string name;
  bool connected = true;
  std::uint64_t next_id = 0;
  std::unordered_map<std::uint64_t, std::function<void(const caf::error&)>> pending;

  ~link_data() {
    // The client shut down with requests in flight: each still gets its answer.
    for (auto& kv : pending)
      kv.second(make_error(errc::shutting_down, "remote manager " + name + ": client shut down"));
  }
};

using link_ptr = manager_api_actor::stateful_pointer<link_data>;

caf::error disconnected(const link_data& st) {
  return make_error(errc::remote_disconnected, "remote manager " + st.name + ": connection lost");
}

/// Forwards one request to the remote manager and answers it with the
/// remote's reply, or with remote_disconnected as soon as the link drops.
template <class R, class... Ts> caf::typed_response_promise<R> forward(link_ptr self, Ts&&... xs) {
  auto rp = self->make_response_promise<R>();
  auto& st = self->state;
  if (!st.connected) {
    rp.deliver(disconnected(st));
    return rp;
  }
  auto id = ++st.next_id;
  st.pending.emplace(id, [rp](const caf::error& err) mutable { rp.deliver(err); });
  self->request(st.remote, caf::infinite, std::forward<Ts>(xs)...)
      .then(
          [=](R& value) mutable {
            if (self->state.pending.erase(id) > 0) rp.deliver(std::move(value));
          },
          [=](caf::error& err) mutable {
            if (self->state.pending.erase(id) > 0) rp.deliver(std::move(err));
          });
  return rp;
}

manager_api_actor::behavior_type remote_link(link_ptr self, manager_api_actor remote,
                                             std::string name) {
  self->state.remote = remote;
  self->state.name = std::move(name);
  self->monitor(remote);
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& st = self->state;
    if (dm.source != st.remote.address()) return;
    log::warn("remote manager {}: connection lost ({})", st.name, caf::to_string(dm.reason));
    st.connected = false;
    auto err = disconnected(st);
    for (auto& kv : st.pending)
      kv.second(err);
    st.pending.clear();
  });
  return {
      [=](initialize_atom a, std::vector<node_entry>& xs) {
        return forward<ok_atom>(self, a, std::move(xs));
      },
      [=](add_node_atom a, std::string& id, node_config& cfg) {
        return forward<ok_atom>(self, a, std::move(id), std::move(cfg));
      },
      [=](remove_node_atom a, std::string& id) { return forward<ok_atom>(self, a, std::move(id)); },
      [=](query_atom a, std::string& id, std::string& sql, std::vector<param>& ps,
          caf::timespan t) {
        return forward<result_set>(self, a, std::move(id), std::move(sql), std::move(ps), t);
      },
      [=](query_atom a, route& r, std::string& sql, std::vector<param>& ps, caf::timespan t) {
        return forward<result_set>(self, a, std::move(r), std::move(sql), std::move(ps), t);
      },
      [=](query_all_atom a, std::string& sql, std::vector<param>& ps, caf::timespan t, bool h) {
        return forward<std::vector<node_result_set>>(self, a, std::move(sql), std::move(ps), t, h);
      },
      [=](caf::get_atom g, nodes_atom n) { return forward<std::vector<node_info>>(self, g, n); },
      [=](caf::get_atom g, node_atom n, std::string& id) {
        return forward<node_info>(self, g, n, std::move(id));
      },
      [=](subscribe_atom a, event_subscriber_actor& sub) {
        return forward<ok_atom>(self, a, std::move(sub));
      },
      [=](unsubscribe_atom a, event_subscriber_actor& sub) {
        return forward<ok_atom>(self, a, std::move(sub));
      },
      [=](shutdown_atom a) { return forward<ok_atom>(self, a); },
      [=](version_atom a) { return forward<std::uint32_t>(self, a); },
      // The sink travels as is: the remote stream sends its chunks straight to
      // it and takes credits straight from it; only the reply comes this way.
      [=](stream_atom a, std::string& id, std::string& sql, std::vector<param>& ps,
          stream_request& spec, stream_sink_actor& sink) {
        return forward<stream_control_actor>(self, a, std::move(id), std::move(sql), std::move(ps),
                                             spec, std::move(sink));
      },
      // transactions: the session answered is the remote one (its owner is
      // this link: it rolls back when the link goes away)
      [=](begin_atom a, std::string& id, transaction_options& o) {
        return forward<transaction_session>(self, a, std::move(id), std::move(o));
      },
      [=](begin_atom a, route& r, transaction_options& o) {
        return forward<transaction_session>(self, a, std::move(r), std::move(o));
      },
      // Node handles are local only (the remote manager refuses them too):
      // requests to a remote node handle would bypass this link's tracking.
      [=](route_atom, node_atom, std::string& id) -> caf::result<node_api_actor> {
        return make_error(errc::invalid_argument,
                          "node " + id + ": node handles are local only; remote manager " +
                              self->state.name + " takes (query_atom, node id, ...) instead");
      },
  };
}

} // namespace

caf::error prepare_remote(caf::actor_system_config& cfg, const tls_options& tls) {
  if (tls.enabled()) {
    if (tls.certificate.empty() || tls.key.empty() || tls.ca.empty())
      return make_error(errc::invalid_config,
                        "TLS needs all three of certificate, key and CA (got a partial set)");
    for (auto [what, path] :
         {std::pair<const char*, const std::string*>{"certificate", &tls.certificate},
          {"key", &tls.key},
          {"CA", &tls.ca}}) {
      std::ifstream in{*path};
      if (!in.good()) return tls_file_error(what, *path);
    }
    if (auto err = check_tls_files(tls)) return err;
    cfg.load<caf::io::middleman>().load<caf::openssl::manager>();
    cfg.openssl_certificate = tls.certificate;
    cfg.openssl_key = tls.key;
    cfg.openssl_cafile = tls.ca;
  } else {
    cfg.load<caf::io::middleman>();
  }
  return caf::none;
}

caf::expected<std::uint16_t> publish_manager(caf::actor_system& sys, manager_api_actor mgr,
                                             const remote_endpoint& ep) {
  if (!ep.tls.enabled() && !is_loopback(ep.host))
    return make_error(errc::invalid_config,
                      "refusing to listen on " + ep.host +
                          " without TLS: only loopback addresses may be served without "
                          "--tls-cert/--tls-key/--tls-ca");
  auto res = ep.tls.enabled() ? caf::openssl::publish(mgr, ep.port, ep.host.c_str(), true)
                              : caf::io::publish(mgr, ep.port, ep.host.c_str(), true);
  if (!res)
    return make_error(errc::invalid_config,
                      "cannot listen on " + endpoint_name(ep) + ": " + sys.render(res.error()));
  log::info("serving the manager on {}:{}{}", ep.host, *res, ep.tls.enabled() ? " (TLS)" : "");
  return *res;
}

void unpublish_manager(manager_api_actor mgr, std::uint16_t port, bool tls) {
  if (tls) {
    // caf::openssl::unpublish does not compile in 0.17.6; send what it would.
    auto& sys = mgr.home_system();
    caf::anon_send(sys.openssl_manager().actor_handle(), caf::unpublish_atom::value, mgr.address(),
                   port);
  } else
    caf::io::unpublish(mgr, port);
}

caf::expected<manager_api_actor> connect_manager(caf::actor_system& sys,
                                                 const remote_endpoint& ep) {
  auto name = endpoint_name(ep);
  auto remote = ep.tls.enabled()
                    ? caf::openssl::remote_actor<manager_api_actor>(sys, ep.host, ep.port)
                    : caf::io::remote_actor<manager_api_actor>(sys, ep.host, ep.port);
  if (!remote) {
    auto info = to_error_info(remote.error(), "remote manager " + name);
    if (info.code != errc::protocol_mismatch) info.code = errc::remote_disconnected;
    info.message = "cannot connect to remote manager " + name + ": " + sys.render(remote.error());
    return to_caf_error(info);
  }
  // Same interface is not enough: the message shapes must match too. The
  // version is asked through the link, which watches the connection: a
  // server that dies during the handshake fails this at once, not after the
  // 10 s timeout.
  auto link = manager_api_actor{sys.spawn(remote_link, *remote, name)};
  caf::error failure;
  std::uint32_t version = 0;
  {
    caf::scoped_actor self{sys};
    self->request(link, std::chrono::seconds{10}, version_atom::value)
        .receive([&](std::uint32_t v) { version = v; }, [&](caf::error& err) { failure = err; });
  }
  log::release_caf_thread_logger();
  if (failure || version != protocol_version)
    caf::anon_send_exit(link, caf::exit_reason::user_shutdown);
  if (failure)
    return make_error(errc::remote_disconnected,
                      "remote manager " + name + " did not answer: " + sys.render(failure));
  if (version != protocol_version)
    return make_error(errc::protocol_mismatch, "remote manager " + name +
                                                   " speaks protocol version " +
                                                   std::to_string(version) + ", this client " +
                                                   std::to_string(protocol_version));
  return link;
}

} // namespace pgcm
