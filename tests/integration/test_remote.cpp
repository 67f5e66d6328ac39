// Remote access over CAF networking: same results as local, events, the
// server killed mid-request (the client's call fails at once, not at its
// timeout) and reconnect, mutual TLS, refusals, protocol check.
#define BOOST_TEST_MODULE test_remote
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/remote_actor.hpp>
#include <caf/logger.hpp>
#include <caf/scoped_actor.hpp>

#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include <pgcm/actors/remote_link.hpp>
#include <pgcm/logging.hpp>
#include <pgcm/messages/error.hpp>
#include <pgcm/messages/protocol.hpp>

#include "fixture.hpp"
#include "shutdown_race.hpp"

extern char** environ;

using namespace std::chrono_literals;
using namespace pgcm;

namespace {

/// The remote_server test binary as a child process.
class server_process {
public:
  explicit server_process(std::vector<std::string> args) {
    int in[2];
    int out[2];
    BOOST_REQUIRE(pipe(in) == 0 && pipe(out) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    std::vector<char*> argv;
    args.insert(args.begin(), server_binary());
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    BOOST_REQUIRE(posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    stdin_ = in[1];
    out_ = fdopen(out[0], "r");
    char line[256];
    while (fgets(line, sizeof(line), out_) != nullptr) {
      std::string s = line;
      if (s.rfind("listening on ", 0) == 0) {
        port_ = static_cast<std::uint16_t>(std::stoi(s.substr(13)));
        break;
      }
    }
  }
  ~server_process() { kill_hard(); }

  std::uint16_t port() const { return port_; }

  void kill_hard() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (stdin_ >= 0) {
      close(stdin_);
      stdin_ = -1;
    }
    if (out_ != nullptr) {
      fclose(out_);
      out_ = nullptr;
    }
  }

  /// Exit code after a graceful stop (stdin closed).
  int stop() {
    close(stdin_);
    stdin_ = -1;
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  static std::string server_binary() {
    char buf[4096];
    auto n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    buf[n] = '\0';
    std::string self = buf;
    return self.substr(0, self.rfind('/')) + "/remote_server";
  }

private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  FILE* out_ = nullptr;
  std::uint16_t port_ = 0;
};

remote_endpoint local(std::uint16_t port) {
  remote_endpoint ep;
  ep.host = "127.0.0.1";
  ep.port = port;
  return ep;
}

/// Certificates for mutual TLS, made with the openssl command.
// What pgcm logs while it lives (the stream and logger stay alive for the
// rest of the process: pgcm threads may still hold the logger).
struct log_capture {
  static std::ostringstream& text() {
    static std::ostringstream t;
    return t;
  }
  log_capture() {
    static auto logger = std::make_shared<spdlog::logger>(
        "pgcm-remote-capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(text()));
    text().str("");
    set_logger(logger);
  }
  ~log_capture() { set_logger(nullptr); }
  // threading.md I13: a remote facade's actor system (middleman, TLS) is
  // destroyed, not left behind.
  static bool system_destroyed() {
    return text().str().find("actor system not destroyed") == std::string::npos;
  }
};

struct certificates {
  std::string dir;
  certificates() {
    char tmpl[] = "/tmp/pgcm-certs-XXXXXX";
    dir = mkdtemp(tmpl);
    auto run = [&](const std::string& cmd) {
      BOOST_REQUIRE_MESSAGE(
          std::system(("cd " + dir + " && " + cmd + " >/dev/null 2>&1").c_str()) == 0, cmd);
    };
    for (std::string ca : {"ca", "other"}) {
      run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=" + ca + "-ca -keyout " +
          ca + ".key -out " + ca + ".pem");
    }
    auto leaf = [&](const std::string& name, const std::string& ca) {
      run("openssl req -newkey rsa:2048 -nodes -subj /CN=" + name + " -keyout " + name +
          ".key -out " + name + ".csr");
      run("printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > " + name + ".ext");
      run("openssl x509 -req -in " + name + ".csr -CA " + ca + ".pem -CAkey " + ca +
          ".key -CAcreateserial -days 2 -extfile " + name + ".ext -out " + name + ".pem");
    };
    leaf("server", "ca");
    leaf("client", "ca");
    leaf("stranger", "other");
  }
  ~certificates() { std::system(("rm -rf " + dir).c_str()); }
  tls_options tls(const std::string& name, const std::string& ca = "ca") const {
    return tls_options{dir + "/" + name + ".pem", dir + "/" + name + ".key",
                       dir + "/" + ca + ".pem"};
  }
};

} // namespace

BOOST_AUTO_TEST_CASE(same_results_and_events_as_local) {
  server_process server{{"127.0.0.1", "0"}};
  BOOST_REQUIRE(server.port() != 0);
  connection_manager client{local(server.port()), test::fast_options()};
  BOOST_CHECK(client.is_remote());
  auto rs = client.query("node0", "SELECT $1::int + 1 AS n", {41});
  BOOST_CHECK_EQUAL(rs[0].get<int>("n"), 42);
  auto all = client.query_all("SELECT pg_is_in_recovery() AS r");
  BOOST_REQUIRE_EQUAL(all.size(), 3u);
  BOOST_CHECK(all[0].success && !all[0].data[0].get<bool>(0));
  BOOST_CHECK(all[1].success && all[1].data[0].get<bool>(0));
  BOOST_CHECK_EQUAL(client.get_nodes().size(), 3u);
  BOOST_REQUIRE(client.get_health("node0"));
  // The role is known from the node's first probe, which may still be running.
  BOOST_CHECK(test::eventually(
      [&] { return client.get_health("node0")->role == node_role::primary; }, 10s));
  try {
    client.query("nope", "SELECT 1");
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::node_not_found);
  }
  // Events cross the wire: a node added and removed through the client.
  std::atomic<int> added{0};
  std::atomic<int> removed{0};
  auto sub = client.on_any([&](const node_event& e) {
    if (e.node_id == "extra" && e.type == event::node_added) ++added;
    if (e.node_id == "extra" && e.type == event::node_removed) ++removed;
  });
  client.add_node("extra", test::node("node2"));
  client.remove_node("extra");
  BOOST_CHECK(test::eventually([&] { return added == 1 && removed == 1; }, 5s));
  // The password never crosses back: get_node() shows none.
  BOOST_CHECK(!client.get_node("node0")->config.password);
  // Detaching does not stop the server's manager.
  client.shutdown();
  connection_manager again{local(server.port()), test::fast_options()};
  BOOST_CHECK_EQUAL(again.query("node1", "SELECT 7")[0].get<int>(0), 7);
}

BOOST_AUTO_TEST_CASE(a_remote_client_destroys_its_actor_system) {
  server_process server{{"127.0.0.1", "0"}};
  BOOST_REQUIRE(server.port() != 0);
  log_capture log;
  {
    connection_manager client{local(server.port()), test::fast_options()};
    BOOST_CHECK(test::answers(client, "node0"));
  }
  BOOST_CHECK_MESSAGE(log_capture::system_destroyed(), log_capture::text().str());
}

BOOST_AUTO_TEST_CASE(streams_cross_the_wire_with_credits) {
  server_process server{{"127.0.0.1", "0"}};
  BOOST_REQUIRE(server.port() != 0);
  connection_manager client{local(server.port()), test::fast_options()};
  stream_options opts;
  opts.chunk_rows = 1000;
  std::vector<std::size_t> sizes;
  std::int64_t next = 1;
  auto n = client.query_stream(
      "node1", "SELECT g FROM generate_series(1, 25500) g", {},
      [&](const result_set& rows) {
        sizes.push_back(rows.size());
        for (auto r : rows)
          BOOST_REQUIRE_EQUAL(r.get<std::int64_t>(0), next++);
      },
      opts);
  BOOST_CHECK_EQUAL(n, 25'500u);
  BOOST_REQUIRE_EQUAL(sizes.size(), 26u);
  BOOST_CHECK_EQUAL(sizes.back(), 500u);
  // A throwing callback cancels the remote stream; the client goes on.
  BOOST_CHECK_THROW(client.query_stream("node0", "SELECT generate_series(1, 100000000)", {},
                                        [](const result_set&) { throw std::runtime_error{"x"}; }),
                    std::runtime_error);
  BOOST_CHECK_EQUAL(client.query("node0", "SELECT 3")[0].get<int>(0), 3);
  // The server killed mid-stream: a clear error at once, no hang.
  auto start = std::chrono::steady_clock::now();
  try {
    client.query_stream("node0", "SELECT generate_series(1, 100000000)", {},
                        [&](const result_set&) { server.kill_hard(); });
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_CHECK_MESSAGE(e.code() == errc::remote_disconnected, e.what());
  }
  BOOST_CHECK_LT(test::ms_since(start), 10'000);
}

BOOST_AUTO_TEST_CASE(transactions_through_a_remote_manager) {
  server_process server{{"127.0.0.1", "0"}};
  BOOST_REQUIRE(server.port() != 0);
  connection_manager client{local(server.port()), test::fast_options()};
  client.query("node0", "DROP TABLE IF EXISTS remote_tx");
  client.query("node0", "CREATE TABLE remote_tx (id int PRIMARY KEY)");
  std::int64_t xid1 = 0;
  std::int64_t xid2 = 0;
  auto at = client.with_transaction("node0", [&](transaction& tx) {
    xid1 = tx.query("SELECT txid_current()")[0].get<std::int64_t>(0);
    tx.query("INSERT INTO remote_tx VALUES ($1)", {1});
    xid2 = tx.query("SELECT txid_current()")[0].get<std::int64_t>(0);
  });
  BOOST_CHECK_EQUAL(xid1, xid2);
  BOOST_CHECK(at.value > 0);
  BOOST_CHECK_THROW(client.with_transaction("node0",
                                            [&](transaction& tx) {
                                              tx.query("INSERT INTO remote_tx VALUES (2)");
                                              throw std::runtime_error{"no"};
                                            }),
                    std::runtime_error);
  BOOST_CHECK_EQUAL(client.query("node0", "SELECT count(*) FROM remote_tx")[0].get<std::int64_t>(0),
                    1);
  // The BEGIN guard answers remote clients too.
  try {
    client.query("node0", "BEGIN");
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::invalid_argument);
  }
  client.query("node0", "DROP TABLE remote_tx");
}

BOOST_AUTO_TEST_CASE(many_threads_calling_while_a_remote_client_shuts_down) {
  server_process server{{"127.0.0.1", "0"}};
  BOOST_REQUIRE(server.port() != 0);
  connection_manager client{local(server.port()), test::fast_options()};
  test::calls_during_shutdown(client);
  // A call after shutdown() is refused at once, never a reconnect.
  try {
    client.get_nodes();
    BOOST_FAIL("no error after shutdown()");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::shutting_down);
  }
}

BOOST_AUTO_TEST_CASE(server_killed_mid_request_fails_promptly_then_reconnects) {
  auto server = std::make_unique<server_process>(std::vector<std::string>{"127.0.0.1", "0"});
  auto port = server->port();
  connection_manager client{local(port), test::fast_options()};
  std::atomic<long long> took{-1};
  std::atomic<int> code{-1};
  std::thread t{[&] {
    auto start = std::chrono::steady_clock::now();
    try {
      client.query("node0", "SELECT pg_sleep(20)", {}, 30s);
    } catch (const error& e) {
      code = static_cast<int>(e.code());
    }
    took = test::ms_since(start);
  }};
  std::this_thread::sleep_for(500ms);
  auto killed_at = std::chrono::steady_clock::now();
  server->kill_hard();
  t.join();
  BOOST_CHECK_EQUAL(code.load(), static_cast<int>(errc::remote_disconnected));
  BOOST_CHECK_LT(test::ms_since(killed_at), 1500); // within a second or so, not 30 s
  // Calls while the server is gone fail fast with the same code.
  try {
    client.query("node0", "SELECT 1");
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::remote_disconnected);
  }
  // A new server on the same port: the client reconnects by itself.
  server =
      std::make_unique<server_process>(std::vector<std::string>{"127.0.0.1", std::to_string(port)});
  BOOST_REQUIRE_EQUAL(server->port(), port);
  BOOST_CHECK(test::eventually([&] { return test::answers(client, "node0"); }, 10s));
}

BOOST_AUTO_TEST_CASE(unreachable_server_is_a_clear_error) {
  // A port nobody listens on.
  server_process server{{"127.0.0.1", "0"}};
  auto port = server.port();
  server.kill_hard();
  try {
    connection_manager client{local(port)};
    BOOST_FAIL("connected to nothing");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::remote_disconnected);
    BOOST_CHECK(std::string{e.what()}.find(std::to_string(port)) != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(mutual_tls) {
  certificates certs;
  auto server_tls = certs.tls("server");
  server_process server{{"127.0.0.1", "0", server_tls.certificate, server_tls.key, server_tls.ca}};
  BOOST_REQUIRE(server.port() != 0);
  auto ep = local(server.port());
  ep.tls = certs.tls("client");
  {
    log_capture log;
    {
      connection_manager client{ep, test::fast_options()};
      BOOST_CHECK_EQUAL(client.query("node0", "SELECT 5")[0].get<int>(0), 5);
    }
    BOOST_CHECK_MESSAGE(log_capture::system_destroyed(), log_capture::text().str());
  }
  // A client whose certificate comes from another CA is refused.
  auto stranger = local(server.port());
  stranger.tls = certs.tls("stranger", "other");
  BOOST_CHECK_THROW(connection_manager(stranger, test::fast_options()), error);
  // A client trusting another CA refuses the server.
  auto wrong_ca = local(server.port());
  wrong_ca.tls = certs.tls("client", "other");
  BOOST_CHECK_THROW(connection_manager(wrong_ca, test::fast_options()), error);
  // A plain client gets no answer from a TLS server.
  BOOST_CHECK_THROW(connection_manager(local(server.port()), test::fast_options()), error);
}

BOOST_AUTO_TEST_CASE(mismatched_tls_files_are_a_config_error) {
  certificates certs;
  auto ep = local(1);
  ep.tls = tls_options{certs.dir + "/server.pem", certs.dir + "/client.key", certs.dir + "/ca.pem"};
  try {
    connection_manager client{ep};
    BOOST_FAIL("accepted a key that does not match the certificate");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::invalid_config);
    BOOST_CHECK_MESSAGE(std::string{e.what()}.find("match") != std::string::npos, e.what());
  }
  ep.tls = tls_options{certs.dir + "/server.key", certs.dir + "/server.key", certs.dir + "/ca.pem"};
  try {
    connection_manager client{ep};
    BOOST_FAIL("accepted a key file as certificate");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::invalid_config);
    BOOST_CHECK(std::string{e.what()}.find("server.key") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(incompatible_clients_get_an_error_and_the_server_survives) {
  server_process server{{"127.0.0.1", "0"}};
  BOOST_REQUIRE(server.port() != 0);
  // 1. Garbage bytes on the wire.
  {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(server.port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BOOST_REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    std::string junk(4096, '\xff');
    for (std::size_t i = 0; i < junk.size(); ++i)
      junk[i] = static_cast<char>((i * 131) ^ 0x5a);
    [[maybe_unused]] auto n = ::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
    ::close(fd);
  }
  // 2. A CAF client expecting another interface.
  {
    caf::actor_system_config cfg;
    register_types(cfg);
    cfg.load<caf::io::middleman>();
    caf::actor_system sys{cfg};
    using other_actor = caf::typed_actor<caf::replies_to<int>::with<int>>;
    auto res = caf::io::remote_actor<other_actor>(sys, "127.0.0.1", server.port());
    BOOST_REQUIRE(!res);
    auto info = to_error_info(res.error());
    BOOST_CHECK(info.code == errc::protocol_mismatch);
  }
  // The server still serves a proper client.
  connection_manager client{local(server.port()), test::fast_options()};
  BOOST_CHECK_EQUAL(client.query("node0", "SELECT 9")[0].get<int>(0), 9);
}

// Node handles (the actor API's fast path) are local only: requests to a
// remote node handle would bypass the link that fails pending requests when
// the connection drops. The served manager refuses a remote requester, and a
// client's link refuses without asking; queries by node id still work.
BOOST_AUTO_TEST_CASE(node_handles_are_local_only) {
  server_process server{{"127.0.0.1", "0"}};
  BOOST_REQUIRE(server.port() != 0);
  auto expect_refusal = [](caf::scoped_actor& self, const manager_api_actor& m) {
    bool refused = false;
    self->request(m, 10s, route_atom::value, node_atom::value, std::string{"node0"})
        .receive([&](node_api_actor&) { BOOST_ERROR("a remote requester got a node handle"); },
                 [&](caf::error& e) {
                   auto info = to_error_info(e);
                   BOOST_TEST_MESSAGE(info.message);
                   BOOST_CHECK(info.code == errc::invalid_argument);
                   BOOST_CHECK_NE(info.message.find("node0"), std::string::npos);
                   refused = true;
                 });
    BOOST_CHECK(refused);
  };
  {
    // Straight to the served manager (no link in between).
    caf::actor_system_config cfg;
    register_types(cfg);
    cfg.load<caf::io::middleman>();
    caf::actor_system sys{cfg};
    auto m = caf::io::remote_actor<manager_api_actor>(sys, "127.0.0.1", server.port());
    BOOST_REQUIRE(m);
    caf::scoped_actor self{sys};
    expect_refusal(self, *m);
  }
  connection_manager client{local(server.port()), test::fast_options()};
  {
    caf::scoped_actor self{client.system()};
    expect_refusal(self, manager_handle(client));
  }
  caf::logger::set_current_actor_system(nullptr); // or ~connection_manager waits for this thread
  BOOST_CHECK_EQUAL(client.query("node0", "SELECT 3")[0].get<int>(0), 3);
}

BOOST_AUTO_TEST_CASE(tls_settings_are_checked_first) {
  auto ep = local(1);
  ep.tls.ca = "/nonexistent/ca.pem"; // only a CA: CAF itself would terminate
  try {
    connection_manager client{ep};
    BOOST_FAIL("accepted a partial TLS configuration");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::invalid_config);
  }
  ep.tls = tls_options{"/nonexistent/c.pem", "/nonexistent/k.pem", "/nonexistent/ca.pem"};
  try {
    connection_manager client{ep};
    BOOST_FAIL("accepted missing TLS files");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::invalid_config);
    BOOST_CHECK(std::string{e.what()}.find("/nonexistent/c.pem") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(no_plain_listening_off_loopback) {
  server_process server{{"0.0.0.0", "0"}}; // refuses and exits
  BOOST_CHECK_EQUAL(server.port(), 0);
  BOOST_CHECK(!is_loopback("0.0.0.0"));
  BOOST_CHECK(!is_loopback("10.1.2.3"));
  BOOST_CHECK(is_loopback("127.0.0.1"));
  BOOST_CHECK(is_loopback("127.8.0.1"));
  BOOST_CHECK(is_loopback("::1"));
  BOOST_CHECK(is_loopback("localhost"));
}
