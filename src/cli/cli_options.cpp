#include "cli_options.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <set>

#include "config_file.hpp"
#include "event_log.hpp"

namespace pgcm::cli {

namespace {

const std::set<std::string> commands{"health", "query", "watch", "demo", "serve"};

/// Which options each command takes (by canonical name).
const std::map<std::string, std::set<std::string>>& allowed_options() {
  static const std::map<std::string, std::set<std::string>> m{
      {"health",
       {"--config", "--node", "--log-level", "--log-file", "--json", "--remote", "--tls-cert",
        "--tls-key", "--tls-ca"}},
      {"query",
       {"--config", "--node", "--log-level", "--log-file", "--json", "--csv", "--all", "--healthy",
        "--node ID", "--timeout", "--target", "--max-lag", "--after", "--remote", "--tls-cert",
        "--tls-key", "--tls-ca"}},
      {"watch",
       {"--config", "--node", "--log-level", "--log-file", "--once", "--color", "--remote",
        "--tls-cert", "--tls-key", "--tls-ca", "--event-log", "--event-log-max"}},
      {"demo", {"--log-level", "--log-file", "--once", "--color"}},
      {"serve",
       {"--config", "--node", "--log-level", "--log-file", "--listen", "--http", "--tls-cert",
        "--tls-key", "--tls-ca", "--event-log", "--event-log-max"}},
  };
  return m;
}

bool takes_value(const std::string& name) {
  static const std::set<std::string> with_value{
      "--config",  "--node",   "--log-level", "--log-file",     "--timeout", "--target",
      "--max-lag", "--after",  "--remote",    "--listen",       "--http",    "--tls-cert",
      "--tls-key", "--tls-ca", "--event-log", "--event-log-max"};
  return with_value.count(name) != 0;
}

const std::set<std::string> log_levels{"trace", "debug",    "info", "warn",
                                       "error", "critical", "off"};

} // namespace

cli_options parse_command_line(int argc, const char* const* argv) {
  cli_options o;
  std::vector<std::string> given; // canonical option names, for the per-command check
  bool options_done = false;
  bool sql_seen = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (sql_seen) {
      o.params.push_back(arg); // everything after the SQL is a parameter
      continue;
    }
    if (!options_done && arg == "--") {
      options_done = true;
      continue;
    }
    if (!options_done && arg.size() > 1 && arg[0] == '-') {
      std::string name = arg;
      std::optional<std::string> value;
      if (arg.compare(0, 2, "--") == 0) {
        auto eq = arg.find('=');
        if (eq != std::string::npos) {
          name = arg.substr(0, eq);
          value = arg.substr(eq + 1);
        }
      }
      if (name == "-h") name = "--help";
      if (name == "-c") name = "--config";
      if (takes_value(name) && !value) {
        if (i + 1 >= argc) throw usage_error{name + " needs a value"};
        value = argv[++i];
      } else if (!takes_value(name) && value && name != "--color") {
        throw usage_error{name + " takes no value"};
      }
      if (name == "--help") {
        o.help = true;
      } else if (name == "--version") {
        o.version = true;
      } else if (name == "--config") {
        if (o.config_path) throw usage_error{"--config given twice"};
        if (value->empty()) throw usage_error{"--config needs a file name"};
        o.config_path = *value;
        given.push_back(name);
      } else if (name == "--node") {
        // ID=CONNINFO defines a node; a plain ID picks the node to query.
        if (value->find('=') != std::string::npos) {
          o.node_specs.push_back(*value);
          given.push_back(name);
        } else {
          if (o.target == query_target::node)
            throw usage_error{"--node ID given twice (query one node, or use --all)"};
          if (value->empty())
            throw usage_error{
                "--node needs ID=CONNINFO (a node definition) or ID (the node to query)"};
          o.target = query_target::node;
          o.target_node = *value;
          given.push_back("--node ID");
        }
      } else if (name == "--all" || name == "--healthy") {
        given.push_back(name);
        if (name == "--healthy")
          o.target = o.target == query_target::all ? query_target::healthy : o.target;
      } else if (name == "--json") {
        if (o.csv) throw usage_error{"--json and --csv: choose one output format"};
        o.json = true;
        given.push_back(name);
      } else if (name == "--csv") {
        if (o.json) throw usage_error{"--json and --csv: choose one output format"};
        o.csv = true;
        given.push_back(name);
      } else if (name == "--log-level") {
        if (log_levels.count(*value) == 0)
          throw usage_error{"--log-level: unknown level \"" + *value +
                            "\" (trace, debug, info, warn, error, critical, off)"};
        o.log_level = *value;
        given.push_back(name);
      } else if (name == "--log-file") {
        o.log_file = *value;
        given.push_back(name);
      } else if (name == "--timeout") {
        auto d = parse_duration(*value);
        if (!d || d->count() <= 0)
          throw usage_error{"--timeout: invalid duration \"" + *value +
                            "\" (e.g. 500ms, 5s, 2m; plain numbers are milliseconds)"};
        o.timeout = *d;
        given.push_back(name);
      } else if (name == "--target") {
        auto t = parse_target(*value);
        if (!t)
          throw usage_error{"--target: unknown target \"" + *value +
                            "\" (primary, standby, prefer-standby, any)"};
        o.routing.to = *t;
        given.push_back(name);
      } else if (name == "--max-lag") {
        bool in_bytes = !value->empty() && (value->back() == 'B' || value->back() == 'b');
        if (auto bytes = in_bytes ? parse_size(*value) : std::nullopt) {
          o.routing.max_lag_bytes = static_cast<std::int64_t>(*bytes);
        } else if (auto d = parse_duration(*value);
                   d && !value->empty() &&
                   !std::isdigit(static_cast<unsigned char>(value->back()))) {
          o.routing.max_lag = *d;
        } else {
          throw usage_error{"--max-lag: invalid lag \"" + *value +
                            "\" (bytes as 16MB, 512KB, 4096B or a time as 2s, 500ms)"};
        }
        given.push_back(name);
      } else if (name == "--after") {
        try {
          o.routing.after = lsn::parse(*value);
        } catch (const error& e) {
          throw usage_error{std::string{"--after: "} + e.what()};
        }
        given.push_back(name);
      } else if (name == "--remote" || name == "--listen" || name == "--http") {
        auto& slot = name == "--remote" ? o.remote : name == "--listen" ? o.listen : o.http;
        if (slot) throw usage_error{name + " given twice"};
        if (value->empty()) throw usage_error{name + " needs HOST:PORT"};
        slot = *value;
        given.push_back(name);
      } else if (name == "--tls-cert" || name == "--tls-key" || name == "--tls-ca") {
        auto& slot = name == "--tls-cert" ? o.tls_cert : name == "--tls-key" ? o.tls_key : o.tls_ca;
        if (!slot.empty()) throw usage_error{name + " given twice"};
        if (value->empty()) throw usage_error{name + " needs a file name"};
        slot = *value;
        given.push_back(name);
      } else if (name == "--event-log") {
        if (o.event_log) throw usage_error{"--event-log given twice"};
        if (value->empty()) throw usage_error{"--event-log needs a file name"};
        o.event_log = *value;
        given.push_back(name);
      } else if (name == "--event-log-max") {
        auto n = parse_size(*value);
        if (!n)
          throw usage_error{"--event-log-max: invalid size \"" + *value +
                            "\" (bytes, or with a unit: 512KB, 10MB, 1GB)"};
        if (*n < 1024) throw usage_error{"--event-log-max: at least 1KB, got \"" + *value + "\""};
        o.event_log_max = *n;
        given.push_back(name);
      } else if (name == "--once") {
        o.once = true;
        given.push_back(name);
      } else if (name == "--color" || name == "--no-color") {
        std::string v = name == "--no-color" ? "never" : value.value_or("always");
        if (v == "auto")
          o.color = color_mode::automatic;
        else if (v == "always")
          o.color = color_mode::always;
        else if (v == "never")
          o.color = color_mode::never;
        else
          throw usage_error{"--color: expected auto, always or never, got \"" + v + "\""};
        given.push_back("--color");
      } else {
        throw usage_error{"unknown option " + name + " (see pgcm --help)"};
      }
      continue;
    }
    // A positional argument.
    if (o.command.empty()) {
      if (arg == "help") {
        o.help = true;
        o.command = "";
        if (i + 1 < argc) {
          std::string c = argv[++i];
          if (commands.count(c) == 0)
            throw usage_error{"unknown command \"" + c + "\" (health, query, watch, demo, serve)"};
          o.command = c;
        }
        continue;
      }
      if (commands.count(arg) == 0)
        throw usage_error{"unknown command \"" + arg + "\" (health, query, watch, demo, serve)"};
      o.command = arg;
      continue;
    }
    if (o.command == "query") {
      o.sql = arg;
      sql_seen = true;
      continue;
    }
    throw usage_error{"unexpected argument \"" + arg + "\" for pgcm " + o.command};
  }

  if (o.help || o.version) return o;
  if (o.command.empty())
    throw usage_error{"missing command: health, query, watch, demo or serve (see pgcm --help)"};
  auto& allowed = allowed_options().at(o.command);
  for (auto& g : given)
    if (allowed.count(g) == 0) {
      if (g == "--node")
        throw usage_error{"--node ID=CONNINFO is not supported by pgcm " + o.command +
                          (o.command == "demo" ? " (the demo starts its own cluster)" : "")};
      if (g == "--config" && o.command == "demo")
        throw usage_error{
            "--config is not supported by pgcm demo (the demo starts its own cluster)"};
      throw usage_error{g + " is not supported by pgcm " + o.command};
    }
  if (o.remote) {
    for (auto& g : given)
      if (g == "--config" || g == "--node")
        throw usage_error{g + " cannot be combined with --remote (the server has the nodes)"};
  }
  int tls_given = !o.tls_cert.empty() + !o.tls_key.empty() + !o.tls_ca.empty();
  // HTTPS alone may do without client certificates (no --tls-ca).
  bool https_only =
      o.command == "serve" && o.http && !o.listen && tls_given == 2 && o.tls_ca.empty();
  if (tls_given != 0 && tls_given != 3 && !https_only)
    throw usage_error{"--tls-cert, --tls-key and --tls-ca go together (mutual TLS); got " +
                      std::to_string(tls_given) + " of 3" +
                      (o.command == "serve" && o.http && !o.listen
                           ? " (--http alone also takes --tls-cert and --tls-key without --tls-ca)"
                           : "")};
  if (tls_given == 3 && o.command != "serve" && !o.remote)
    throw usage_error{"--tls-cert/--tls-key/--tls-ca need --remote HOST:PORT"};
  if (!o.event_log && std::count(given.begin(), given.end(), "--event-log-max") != 0)
    throw usage_error{"--event-log-max needs --event-log FILE"};
  if (o.command == "serve" && !o.listen && !o.http)
    throw usage_error{"pgcm serve: missing --listen HOST:PORT or --http HOST:PORT"};
  if (o.command == "query") {
    int targets = 0;
    bool target_seen = false;
    bool route_bounds = false;
    for (auto& g : given) {
      if (g == "--all" || g == "--healthy" || g == "--node ID" || g == "--target") ++targets;
      target_seen = target_seen || g == "--target";
      route_bounds = route_bounds || g == "--max-lag" || g == "--after";
    }
    if (targets > 1)
      throw usage_error{"--node ID, --all, --healthy and --target exclude each other"};
    if (route_bounds && !target_seen)
      throw usage_error{"--max-lag and --after need --target (primary, standby, prefer-standby, "
                        "any)"};
    if (target_seen) o.target = query_target::routed;
    if (!sql_seen)
      throw usage_error{"pgcm query: missing SQL (pgcm query [--node ID | --all | --healthy] SQL "
                        "[PARAM...])"};
    if (o.sql.empty()) throw usage_error{"pgcm query: the SQL is empty"};
  }
  return o;
}

std::string help_text(const std::string& command) {
  const std::string nodes =
      "Nodes (health, query, watch):\n"
      "  -c, --config FILE        config file (manager options and nodes; see "
      "docs/config-file.md);\n"
      "                           default: $PGCM_CONFIG when no --node is given\n"
      "  --node ID=CONNINFO       add a node; CONNINFO is a libpq keyword string\n"
      "                           (\"host=db1 port=5432 dbname=app user=me\") or a URI\n"
      "                           (postgresql://me@db1:5432/app?sslmode=require); libpq's\n"
      "                           environment (PGPASSWORD, PGSSLMODE, ...) fills in the rest.\n"
      "                           Repeatable; combines with --config.\n"
      "  --remote HOST:PORT       instead: talk to a `pgcm serve` there (no --config/--node)\n"
      "  --tls-cert FILE, --tls-key FILE, --tls-ca FILE\n"
      "                           mutual TLS with the server (all three or none)\n";
  const std::string common =
      "Common options:\n"
      "  --log-level LEVEL        trace, debug, info, warn (default), error, critical, off\n"
      "                           (default from $PGCM_LOG_LEVEL)\n"
      "  --log-file FILE          write pgcm's log there instead of stderr\n"
      "  -h, --help               this help\n";
  const std::string event_log =
      "  --event-log FILE         append every event to FILE as one JSON line (time, type,\n"
      "                           node, health/stats/error); never slows the manager: when\n"
      "                           the disk falls behind, lines are dropped and counted\n"
      "  --event-log-max SIZE     rotate FILE at SIZE (default 10MB; units B, KB, MB, GB),\n"
      "                           keeping FILE.1 to FILE.3\n";
  const std::string exits = "Exit codes: 0 ok, 1 a query or node failed, 2 usage or config error.\n"
                            "SIGINT/SIGTERM shut down gracefully (bounded by shutdown_timeout); a "
                            "second one exits at once.\n";
  if (command == "health")
    return "Usage: pgcm health [options]\n\n"
           "Connects to every node, probes it once and prints one row per node: id, role,\n"
           "status, latency, consecutive failures, pool total/idle/waiting, last error.\n"
           "Exit code 1 if any node is not healthy.\n\n"
           "Options:\n"
           "  --json                   print JSON instead of a table\n\n" +
           nodes + "\n" + common + "\n" + exits;
  if (command == "query")
    return "Usage: pgcm query [--node ID | --all | --healthy | --target T] [options] SQL "
           "[PARAM...]\n\n"
           "Runs SQL on one node, on every node (--all, the default), on the healthy ones or\n"
           "on one node chosen by --target, and prints one aligned table per node (like\n"
           "psql), headed by the node that answered. PARAMs fill $1, $2, ... and\n"
           "are sent separately from the SQL; \\N stands for NULL. Options go before SQL;\n"
           "everything after SQL is a parameter. A node that fails shows its error; the exit\n"
           "code is then 1.\n\n"
           "Options:\n"
           "  --node ID                the node to query\n"
           "  --all                    every node (default)\n"
           "  --healthy                the nodes whose health is healthy\n"
           "  --target T               one node by role: primary, standby, prefer-standby, any\n"
           "  --max-lag LAG            with --target: leave out standbys further behind\n"
           "                           (bytes: 16MB, 512KB; time: 2s, 500ms; both may be given)\n"
           "  --after LSN              with --target: only nodes that replayed this WAL\n"
           "                           position (e.g. 16/B374D848) or the primary\n"
           "  --timeout DURATION       per-query deadline (e.g. 500ms, 5s; default: the\n"
           "                           manager's query_timeout)\n"
           "  --json                   print JSON lines instead of tables: per node a\n"
           "                           columns object, one array per row, an end object\n"
           "  --csv                    print CSV (RFC 4180 quoting, a header row; with\n"
           "                           several nodes a first column \"node\")\n\n"
           "Rows are printed as they arrive (streamed; --target reads its result whole);\n"
           "a table's column widths come from the first 1000 rows.\n\n" +
           nodes + "\n" + common + "\n" + exits;
  if (command == "watch")
    return "Usage: pgcm watch [options]\n\n"
           "Full-screen live status view, redrawn on every change: per node the health\n"
           "colour, role, latency history, failures, last error and pool gauges, and the\n"
           "replication slots of the primary. Keys: q (or Ctrl-C) quits.\n\n"
           "Options:\n"
           "  --once                   print one snapshot (once every node was probed) and exit\n"
           "  --color[=WHEN]           auto (default: when stdout is a terminal and $NO_COLOR\n"
           "                           is unset), always, never; --no-color = never\n" +
           event_log + "\n" + nodes + "\n" + common + "\n" + exits;
  if (command == "demo")
    return "Usage: pgcm demo [options]\n\n"
           "Starts a throwaway PostgreSQL 15 cluster on loopback (a primary and two streaming\n"
           "replicas, in a new /tmp/pgcm-demo-XXXXXX directory, via scripts/pg-cluster), runs\n"
           "a little traffic against it and opens the live status view. q or Ctrl-C stops\n"
           "the view, the manager and the cluster, and removes the directory.\n\n"
           "pg-cluster is looked up as $PGCM_PG_CLUSTER, then <prefix>/libexec/pgcm/pg-cluster\n"
           "next to the installed binary, then the source tree's scripts/pg-cluster.\n\n"
           "Options:\n"
           "  --once                   print one snapshot once every node is healthy, then\n"
           "                           stop the cluster and exit\n"
           "  --color[=WHEN]           auto, always, never (see pgcm watch --help)\n\n" +
           common + "\n" + exits;
  if (command == "serve")
    return "Usage: pgcm serve --listen HOST:PORT [--http HOST:PORT] [options]\n"
           "       pgcm serve --http HOST:PORT [options]\n\n"
           "Runs the manager for the configured nodes and publishes it over CAF networking,\n"
           "so that `pgcm health|query|watch --remote HOST:PORT` (or a program using\n"
           "pgcm::connection_manager{remote_endpoint}) can use it. Port 0 picks a free port;\n"
           "the port is printed as \"pgcm: serving on HOST:PORT\". Without TLS only loopback\n"
           "addresses are accepted. Runs until SIGINT/SIGTERM.\n\n"
           "With --http it also (or only) serves HTTP: the status page at /, Prometheus\n"
           "metrics at /metrics, /api/health (the JSON of `pgcm health --json`) and\n"
           "/api/events (Server-Sent Events, one JSON object per event), printed as\n"
           "\"pgcm: http on http://HOST:PORT/\". Loopback only unless TLS is given (HTTPS).\n\n"
           "Options:\n"
           "  --listen HOST:PORT       where to listen for CAF clients (--remote)\n"
           "  --http HOST:PORT         where to serve HTTP (HTTPS with --tls-cert/--tls-key)\n"
           "  --tls-cert FILE          this server's certificate (PEM)\n"
           "  --tls-key FILE           its private key\n"
           "  --tls-ca FILE            the CA clients' certificates must come from (for\n"
           "                           --http alone optional: then no client certificate)\n" +
           event_log + "\n" + nodes + "\n" + common + "\n" + exits;
  return "Usage: pgcm COMMAND [options]\n\n"
         "Manages libpq connection pools across the nodes of a PostgreSQL replication cluster.\n\n"
         "Commands:\n"
         "  health                   one table: the health and pool of every node\n"
         "  query SQL [PARAM...]     run SQL on one node, every node or the healthy ones\n"
         "  watch                    full-screen live status view\n"
         "  demo                     start a local 3-node cluster and watch it\n"
         "  serve --listen HOST:PORT serve the manager to remote clients (--remote);\n"
         "                           --http HOST:PORT: status page, /metrics, /api/*\n"
         "  help COMMAND             help on a command (also: pgcm COMMAND --help)\n\n" +
         nodes + "\n" + common + "  --version                print the version\n\n" + exits;
}

} // namespace pgcm::cli
