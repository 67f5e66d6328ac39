#include "pgcm_side.hpp"
#include "raw.hpp"

#include <condition_variable>
#include <cstdio>
#include <future>
#include <iostream>
#include <mutex>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include <pgcm/actors/cluster_manager.hpp>
#include <pgcm/messages/error.hpp>
#include <pgcm/messages/protocol.hpp>
#include <pgcm/pgcm.hpp>
#include <pgcm/scheduler.hpp>

namespace bench {

using namespace std::chrono_literals;

// -- runtime -------------------------------------------------------------------

struct pgcm_runtime::impl {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::string policy;
};

pgcm_runtime::pgcm_runtime(const std::string& policy, int max_threads) : impl_(new impl) {
  pgcm::register_types(impl_->cfg);
  if (policy == "pgcm")
    pgcm::use_pgcm_scheduler(impl_->cfg);
  else
    impl_->cfg.set("scheduler.policy",
                   policy == "stealing" ? caf::atom("stealing") : caf::atom("sharing"));
  if (max_threads > 0)
    impl_->cfg.set("scheduler.max-threads", static_cast<std::size_t>(max_threads));
  impl_->policy = policy;
  impl_->sys = std::make_unique<caf::actor_system>(impl_->cfg);
}

pgcm_runtime::~pgcm_runtime() = default;

std::string pgcm_runtime::policy() const {
  return impl_->policy;
}

void set_pgcm_log_level(const std::string& level) {
  pgcm::set_log_level(level);
}

namespace {

pgcm::node_config node_cfg(const cluster_info& c, const server& s, pool_settings pool) {
  pgcm::node_config n;
  n.host = c.host;
  n.port = s.port;
  n.database = c.database;
  n.user = c.user;
  n.password = c.password;
  n.application_name = "pgcm-bench";
  n.pool.min = pool.min;
  n.pool.max = pool.max;
  n.pool.pipeline_depth = pool.pipeline_depth;
  n.pool.statement_cache = pool.statement_cache;
  return n;
}

std::vector<std::pair<std::string, pgcm::node_config>>
node_entries(const cluster_info& c, const std::vector<server>& servers, pool_settings pool) {
  std::vector<std::pair<std::string, pgcm::node_config>> out;
  for (auto& s : servers)
    out.emplace_back(s.name, node_cfg(c, s, pool));
  return out;
}

/// Only the connection settings: everything else as pgcm's defaults.
std::vector<std::pair<std::string, pgcm::node_config>>
default_entries(const cluster_info& c, const std::vector<server>& servers) {
  std::vector<std::pair<std::string, pgcm::node_config>> out;
  for (auto& s : servers) {
    pgcm::node_config n;
    n.host = c.host;
    n.port = s.port;
    n.database = c.database;
    n.user = c.user;
    n.password = c.password;
    out.emplace_back(s.name, std::move(n));
  }
  return out;
}

pgcm::manager_options bench_options() {
  pgcm::manager_options o;
  o.query_timeout = 30s;
  return o;
}

std::string pool_text(pool_settings p) {
  return "pool min " + std::to_string(p.min) + " max " + std::to_string(p.max) +
         ", pipeline depth " + std::to_string(p.pipeline_depth) +
         (p.statement_cache > 0 ? ", prepared" : ", unprepared");
}

/// Waits until the pools of `mgr` have opened `want` connections (or 30 s).
bool wait_pools(pgcm::connection_manager& mgr, std::int64_t want, std::chrono::microseconds poll) {
  auto give_up = now_ns() + 30'000'000'000LL;
  for (;;) {
    std::int64_t open = 0;
    for (auto& s : mgr.get_all_pool_stats())
      open += s.connections_opened;
    if (open >= want) return true;
    if (now_ns() > give_up) return false;
    std::this_thread::sleep_for(poll);
  }
}

// -- one request -----------------------------------------------------------------

struct request_spec {
  bool all = false;
  std::string node; // for single
  std::string sql;
  bool routed = false; // query(route{target::standby}, sql) instead of the node by name
  std::string label;   // contender name (default pgcm-facade / pgcm-actor)
  /// with_transaction: `sql` ($1 = the calling thread's own row of bench_tx)
  /// as the transaction's only statement.
  bool tx = false;
  /// What a new user writes: `pgcm::connection_manager mgr;` (its own actor
  /// system, default manager_options) and node_configs with only the
  /// connection settings (default pool).
  bool defaults = false;
};

std::atomic<int> tx_rows{0};

/// Runs one request through the facade; false on failure (with `err`).
bool facade_call(pgcm::connection_manager& mgr, const request_spec& r, std::string& err) {
  try {
    if (r.all) {
      auto res = mgr.query_all(r.sql);
      for (auto& n : res)
        if (!n.success) {
          err = n.error ? n.error->message : "node failed";
          return false;
        }
    } else if (r.routed) {
      pgcm::route to;
      to.to = pgcm::target::standby;
      (void)mgr.query(to, r.sql);
    } else if (r.tx) {
      // Each client thread updates its own row (no lock waits between them).
      thread_local int row = tx_rows++ % 64 + 1;
      (void)mgr.with_transaction(r.node, [&](pgcm::transaction& tx) { tx.query(r.sql, {row}); });
    } else {
      (void)mgr.query(r.node, r.sql);
    }
    return true;
  } catch (const std::exception& e) {
    err = e.what();
    return false;
  }
}

// -- facade: N client threads ---------------------------------------------------

class pgcm_facade final : public contender {
public:
  pgcm_facade(pgcm_runtime& rt, cluster_info c, std::vector<server> servers, request_spec req,
              int threads, pool_settings pool)
      : rt_(rt), c_(std::move(c)), servers_(std::move(servers)), req_(std::move(req)), n_(threads),
        pool_(pool) {}

  ~pgcm_facade() override { teardown(); }

  std::string name() const override { return req_.label.empty() ? "pgcm-facade" : req_.label; }

  std::string describe() const override {
    if (req_.tx)
      return std::to_string(n_) +
             " threads looping on with_transaction(UPDATE) (blocking facade), " + pool_text(pool_) +
             ", policy " + rt_.policy();
    return std::to_string(n_) + " threads looping on " +
           (req_.all      ? "query_all()"
            : req_.routed ? "query(route{standby})"
                          : "query(\"" + req_.node + "\")") +
           " (blocking facade), " + pool_text(pool_) +
           (req_.defaults ? ", default manager_options and pool_config, the manager's own actor "
                            "system"
                          : ", policy " + rt_.policy());
  }

  void setup() override {
    if (req_.tx) ensure_tx_table(c_, servers_.at(0));
    if (req_.defaults) {
      mgr_ = std::make_unique<pgcm::connection_manager>();
      mgr_->initialize(default_entries(c_, servers_));
    } else {
      mgr_ = std::make_unique<pgcm::connection_manager>(*rt_.get().sys, bench_options());
      mgr_->initialize(node_entries(c_, servers_, pool_));
    }
    std::string err;
    if (!facade_call(*mgr_, req_, err))
      throw std::runtime_error("pgcm facade: first request failed: " + err);
  }

  void teardown() override { mgr_.reset(); }

  window_result run(nanoseconds d) override {
    struct local {
      std::vector<std::uint32_t> lat;
      std::uint64_t ops = 0, errors = 0;
      std::string first_error;
    };
    std::vector<local> locals(static_cast<std::size_t>(n_));
    std::mutex mtx;
    std::condition_variable cv;
    bool go = false;
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < n_; ++i) {
      threads.emplace_back([&, i] {
        auto& me = locals[static_cast<std::size_t>(i)];
        me.lat.reserve(1 << 14);
        {
          std::unique_lock<std::mutex> lk{mtx};
          cv.wait(lk, [&] { return go; });
        }
        std::string err;
        while (!stop.load(std::memory_order_relaxed)) {
          auto t0 = now_ns();
          bool ok = facade_call(*mgr_, req_, err);
          auto t1 = now_ns();
          if (stop.load(std::memory_order_relaxed)) break;
          if (ok) {
            ++me.ops;
            me.lat.push_back(clamp_ns(t1 - t0));
          } else {
            ++me.errors;
            if (me.first_error.empty()) me.first_error = err;
          }
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
    auto t0 = now_ns();
    {
      std::lock_guard<std::mutex> lk{mtx};
      go = true;
    }
    cv.notify_all();
    std::this_thread::sleep_for(d);
    stop = true;
    auto t1 = now_ns();
    for (auto& t : threads)
      t.join();
    window_result out;
    out.seconds = static_cast<double>(t1 - t0) / 1e9;
    for (auto& l : locals) {
      out.ops += l.ops;
      out.errors += l.errors;
      if (out.first_error.empty()) out.first_error = l.first_error;
      out.lat_ns.insert(out.lat_ns.end(), l.lat.begin(), l.lat.end());
    }
    return out;
  }

private:
  pgcm_runtime& rt_;
  cluster_info c_;
  std::vector<server> servers_;
  request_spec req_;
  int n_;
  pool_settings pool_;
  std::unique_ptr<pgcm::connection_manager> mgr_;
};

// -- actor API: one requester keeping N requests outstanding -------------------

struct requester_ctx {
  pgcm::manager_api_actor mgr;
  /// The node's handle ((route_atom, node_atom, id), the actor API's fast
  /// path); null: queries go to the manager (`...actor-via-manager`).
  pgcm::node_api_actor node;
  request_spec req;
  std::atomic<bool> stop{false};
  int outstanding = 0;
  window_result out;
  std::promise<void> done;
};

using ctx_ptr = std::shared_ptr<requester_ctx>;

void issue(caf::event_based_actor* self, const ctx_ptr& ctx);

void on_reply(caf::event_based_actor* self, const ctx_ptr& ctx, std::int64_t t0, bool ok,
              const std::string& err) {
  --ctx->outstanding;
  if (ctx->stop.load(std::memory_order_relaxed)) {
    if (ctx->outstanding == 0) {
      ctx->done.set_value();
      self->quit();
    }
    return;
  }
  if (ok) {
    ++ctx->out.ops;
    ctx->out.lat_ns.push_back(clamp_ns(now_ns() - t0));
  } else {
    ++ctx->out.errors;
    if (ctx->out.first_error.empty()) ctx->out.first_error = err;
  }
  issue(self, ctx);
}

// The requester gives no CAF request timeout (caf::infinite): pgcm answers
// every request by its own deadline (the 30 s query timeout sent along), and
// a CAF timeout would add two trips to CAF's clock thread per request
// (set + cancel), which is the application's cost, not pgcm's.
void issue(caf::event_based_actor* self, const ctx_ptr& ctx) {
  ++ctx->outstanding;
  auto t0 = now_ns();
  auto on_error = [self, ctx, t0](caf::error& e) {
    on_reply(self, ctx, t0, false, pgcm::to_error_info(e).message);
  };
  if (ctx->req.all) {
    self->request(ctx->mgr, caf::infinite, pgcm::query_all_atom::value, ctx->req.sql,
                  std::vector<pgcm::param>{}, caf::timespan{30s}, false)
        .then(
            [self, ctx, t0](std::vector<pgcm::node_result_set>& res) {
              for (auto& n : res)
                if (!n.success)
                  return on_reply(self, ctx, t0, false, n.error ? n.error->message : "node failed");
              on_reply(self, ctx, t0, true, {});
            },
            on_error);
  } else if (ctx->node) {
    self->request(ctx->node, caf::infinite, pgcm::query_atom::value, ctx->req.sql,
                  std::vector<pgcm::param>{}, caf::timespan{30s})
        .then([self, ctx, t0](pgcm::result_set&) { on_reply(self, ctx, t0, true, {}); }, on_error);
  } else {
    self->request(ctx->mgr, caf::infinite, pgcm::query_atom::value, ctx->req.node, ctx->req.sql,
                  std::vector<pgcm::param>{}, caf::timespan{30s})
        .then([self, ctx, t0](pgcm::result_set&) { on_reply(self, ctx, t0, true, {}); }, on_error);
  }
}

class pgcm_actor final : public contender {
public:
  /// blocking: N threads, each with one long-lived scoped_actor doing
  /// request/receive (what the facade does, minus a scoped_actor per call).
  /// via_manager: the requester sends its queries to the manager (which
  /// delegates them to the node) instead of the node's handle.
  pgcm_actor(pgcm_runtime& rt, cluster_info c, std::vector<server> servers, request_spec req,
             int in_flight, pool_settings pool, bool blocking, bool via_manager = false)
      : rt_(rt), c_(std::move(c)), servers_(std::move(servers)), req_(std::move(req)),
        n_(in_flight), pool_(pool), blocking_(blocking), via_manager_(via_manager) {}

  ~pgcm_actor() override { teardown(); }

  std::string name() const override {
    if (blocking_) return "pgcm-scoped-per-thread";
    return via_manager_ ? "pgcm-actor-via-manager" : "pgcm-actor";
  }

  std::string describe() const override {
    if (blocking_)
      return std::to_string(n_) + " threads, each reusing one scoped_actor for request/receive " +
             "(facade minus its scoped_actor per call), " + pool_text(pool_) + ", policy " +
             rt_.policy();
    return "1 requester actor keeping " + std::to_string(n_) + " " +
           (req_.all ? "query_all_atom" : "query_atom") + " requests outstanding " +
           (req_.all       ? "at the manager"
            : via_manager_ ? "at the manager"
                           : "at the node's handle (route_atom)") +
           ", " + pool_text(pool_) + ", policy " + rt_.policy();
  }

  window_result run_blocking(nanoseconds d) {
    struct local {
      std::vector<std::uint32_t> lat;
      std::uint64_t ops = 0, errors = 0;
      std::string first_error;
    };
    std::vector<local> locals(static_cast<std::size_t>(n_));
    std::mutex mtx;
    std::condition_variable cv;
    bool go = false;
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    auto& sys = *rt_.get().sys;
    for (int i = 0; i < n_; ++i) {
      threads.emplace_back([&, i] {
        auto& me = locals[static_cast<std::size_t>(i)];
        me.lat.reserve(1 << 14);
        caf::scoped_actor self{sys};
        {
          std::unique_lock<std::mutex> lk{mtx};
          cv.wait(lk, [&] { return go; });
        }
        std::string err;
        while (!stop.load(std::memory_order_relaxed)) {
          auto t0 = now_ns();
          bool ok = true;
          if (req_.all) {
            // 32 s: the facade's own guard (query timeout + 2 s).
            self->request(mgr_, 32s, pgcm::query_all_atom::value, req_.sql,
                          std::vector<pgcm::param>{}, caf::timespan{30s}, false)
                .receive(
                    [&](std::vector<pgcm::node_result_set>& res) {
                      for (auto& n : res)
                        if (!n.success) {
                          ok = false;
                          err = n.error ? n.error->message : "node failed";
                        }
                    },
                    [&](caf::error& e) {
                      ok = false;
                      err = pgcm::to_error_info(e).message;
                    });
          } else {
            self->request(mgr_, 32s, pgcm::query_atom::value, req_.node, req_.sql,
                          std::vector<pgcm::param>{}, caf::timespan{30s})
                .receive([&](pgcm::result_set&) {},
                         [&](caf::error& e) {
                           ok = false;
                           err = pgcm::to_error_info(e).message;
                         });
          }
          auto t1 = now_ns();
          if (stop.load(std::memory_order_relaxed)) break;
          if (ok) {
            ++me.ops;
            me.lat.push_back(clamp_ns(t1 - t0));
          } else {
            ++me.errors;
            if (me.first_error.empty()) me.first_error = err;
          }
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
    auto t0 = now_ns();
    {
      std::lock_guard<std::mutex> lk{mtx};
      go = true;
    }
    cv.notify_all();
    std::this_thread::sleep_for(d);
    stop = true;
    auto t1 = now_ns();
    for (auto& t : threads)
      t.join();
    window_result out;
    out.seconds = static_cast<double>(t1 - t0) / 1e9;
    for (auto& l : locals) {
      out.ops += l.ops;
      out.errors += l.errors;
      if (out.first_error.empty()) out.first_error = l.first_error;
      out.lat_ns.insert(out.lat_ns.end(), l.lat.begin(), l.lat.end());
    }
    return out;
  }

  void setup() override {
    auto& sys = *rt_.get().sys;
    auto hdl = pgcm::spawn_manager(sys, bench_options());
    if (!hdl) throw std::runtime_error("spawn_manager failed: " + sys.render(hdl.error()));
    mgr_ = *hdl;
    caf::scoped_actor self{sys};
    caf::error failure;
    self->request(mgr_, 60s, pgcm::initialize_atom::value, node_entries(c_, servers_, pool_))
        .receive([](pgcm::ok_atom) {}, [&](caf::error& e) { failure = e; });
    if (failure)
      throw std::runtime_error("pgcm initialize failed: " + pgcm::to_error_info(failure).message);
  }

  void teardown() override {
    if (!mgr_) return;
    {
      caf::scoped_actor self{*rt_.get().sys};
      self->request(mgr_, 30s, pgcm::shutdown_atom::value)
          .receive([](pgcm::ok_atom) {}, [](caf::error&) {});
    }
    mgr_ = nullptr;
  }

  window_result run(nanoseconds d) override {
    if (blocking_) return run_blocking(d);
    auto ctx = std::make_shared<requester_ctx>();
    ctx->mgr = mgr_;
    ctx->req = req_;
    if (!req_.all && !via_manager_) {
      // The fast path: ask the manager for the node's handle once.
      caf::scoped_actor self{*rt_.get().sys};
      caf::error failure;
      self->request(mgr_, 10s, pgcm::route_atom::value, pgcm::node_atom::value, req_.node)
          .receive([&](pgcm::node_api_actor& h) { ctx->node = std::move(h); },
                   [&](caf::error& e) { failure = e; });
      if (failure)
        throw std::runtime_error("pgcm node handle: " + pgcm::to_error_info(failure).message);
    }
    ctx->out.lat_ns.reserve(1 << 16);
    auto done = ctx->done.get_future();
    auto n = n_;
    auto t0 = now_ns();
    rt_.get().sys->spawn([ctx, n](caf::event_based_actor* self) {
      for (int i = 0; i < n; ++i)
        issue(self, ctx);
    });
    std::this_thread::sleep_for(d);
    ctx->stop = true;
    auto t1 = now_ns();
    if (done.wait_for(60s) != std::future_status::ready)
      throw std::runtime_error("pgcm actor: requests did not finish within 60 s");
    window_result out = std::move(ctx->out);
    out.seconds = static_cast<double>(t1 - t0) / 1e9;
    return out;
  }

private:
  pgcm_runtime& rt_;
  cluster_info c_;
  std::vector<server> servers_;
  request_spec req_;
  int n_;
  pool_settings pool_;
  bool blocking_;
  bool via_manager_;
  pgcm::manager_api_actor mgr_;
};

// -- startup ----------------------------------------------------------------------

class pgcm_startup final : public contender {
public:
  pgcm_startup(pgcm_runtime& rt, cluster_info c, std::vector<server> servers, int per_server)
      : rt_(rt), c_(std::move(c)), servers_(std::move(servers)), per_server_(per_server) {}

  std::string name() const override { return "pgcm-initialize"; }

  std::string describe() const override {
    return "new connection_manager, initialize(" + std::to_string(servers_.size()) +
           " nodes, pool min=max=" + std::to_string(per_server_) +
           "), until every pool connection is open (polled every 1 ms; each node also opens 1 "
           "health-probe connection)";
  }

  window_result run(nanoseconds) override {
    pool_settings pool;
    pool.min = pool.max = per_server_;
    window_result out;
    auto want = static_cast<std::int64_t>(servers_.size()) * per_server_;
    auto t0 = now_ns();
    auto mgr = std::make_unique<pgcm::connection_manager>(*rt_.get().sys, bench_options());
    mgr->initialize(node_entries(c_, servers_, pool));
    auto t_init = now_ns();
    bool ok = wait_pools(*mgr, want, std::chrono::microseconds{1000});
    auto t1 = now_ns();
    mgr.reset(); // shutdown: not timed
    out.seconds = static_cast<double>(t1 - t0) / 1e9;
    if (ok) {
      out.ops = 1;
      out.lat_ns.push_back(clamp_ns(t1 - t0));
    } else {
      out.errors = 1;
      out.first_error = "pools did not fill within 30 s";
    }
    out.extra.emplace_back("initialize_returned_ms", static_cast<double>(t_init - t0) / 1e6);
    return out;
  }

private:
  pgcm_runtime& rt_;
  cluster_info c_;
  std::vector<server> servers_;
  int per_server_;
};

// -- scale children ------------------------------------------------------------

} // namespace

contender_ptr make_pgcm_tx(pgcm_runtime& rt, const cluster_info& c, const server& srv,
                           std::string update_sql, int threads, pool_settings pool) {
  request_spec r;
  r.node = srv.name;
  r.sql = std::move(update_sql);
  r.tx = true;
  return std::make_unique<pgcm_facade>(rt, c, std::vector<server>{srv}, r, threads, pool);
}

contender_ptr make_pgcm_single(pgcm_runtime& rt, const cluster_info& c, const server& srv,
                               std::string sql, int in_flight, pgcm_api api, pool_settings pool) {
  request_spec r;
  r.node = srv.name;
  r.sql = std::move(sql);
  if (api == pgcm_api::facade)
    return std::make_unique<pgcm_facade>(rt, c, std::vector<server>{srv}, r, in_flight, pool);
  return std::make_unique<pgcm_actor>(rt, c, std::vector<server>{srv}, r, in_flight, pool,
                                      api == pgcm_api::scoped, api == pgcm_api::actor_via_manager);
}

contender_ptr make_pgcm_routed(pgcm_runtime& rt, const cluster_info& c, std::vector<server> servers,
                               std::string sql, int in_flight, bool routed, pool_settings pool) {
  request_spec r{false, servers.at(1).name, std::move(sql), routed,
                 routed ? "pgcm-routed-standby" : "pgcm-by-name"};
  return std::make_unique<pgcm_facade>(rt, c, std::move(servers), r, in_flight, pool);
}

contender_ptr make_pgcm_all(pgcm_runtime& rt, const cluster_info& c, std::vector<server> servers,
                            std::string sql, int in_flight, pgcm_api api, pool_settings pool) {
  request_spec r;
  r.all = true;
  r.sql = std::move(sql);
  if (api == pgcm_api::facade)
    return std::make_unique<pgcm_facade>(rt, c, std::move(servers), r, in_flight, pool);
  return std::make_unique<pgcm_actor>(rt, c, std::move(servers), r, in_flight, pool,
                                      api == pgcm_api::scoped);
}

contender_ptr make_pgcm_default(pgcm_runtime& rt, const cluster_info& c,
                                std::vector<server> servers, std::string sql, int threads,
                                bool all) {
  request_spec r;
  r.all = all;
  if (!all) r.node = servers.at(0).name;
  r.sql = std::move(sql);
  r.defaults = true;
  r.label = "pgcm-defaults";
  const pgcm::pool_config dflt;
  pool_settings pool;
  pool.min = dflt.min;
  pool.max = dflt.max;
  pool.pipeline_depth = dflt.pipeline_depth;
  pool.statement_cache = dflt.statement_cache;
  return std::make_unique<pgcm_facade>(rt, c, std::move(servers), r, threads, pool);
}

contender_ptr make_pgcm_startup(pgcm_runtime& rt, const cluster_info& c,
                                std::vector<server> servers, int per_server) {
  return std::make_unique<pgcm_startup>(rt, c, std::move(servers), per_server);
}

int scale_child_pgcm(const cluster_info& c, const std::string& policy, int max_threads, int nodes,
                     double seconds, double probe_seconds) {
  auto rss0 = rss_kib();
  auto thr0 = thread_count();
  auto sock0 = socket_count();
  pgcm_runtime rt{policy, max_threads};
  auto rss1 = rss_kib();
  auto thr1 = thread_count();
  std::vector<std::pair<std::string, pgcm::node_config>> entries;
  pool_settings pool;
  pool.min = pool.max = 1;
  for (int i = 0; i < nodes; ++i) {
    char id[16];
    std::snprintf(id, sizeof(id), "n%03d", i);
    entries.emplace_back(
        id, node_cfg(c, c.servers[static_cast<std::size_t>(i) % c.servers.size()], pool));
  }
  auto mgr = std::make_unique<pgcm::connection_manager>(*rt.get().sys, bench_options());
  auto t0 = now_ns();
  mgr->initialize(std::move(entries));
  bool ok = wait_pools(*mgr, nodes, std::chrono::microseconds{10000});
  auto t1 = now_ns();
  std::this_thread::sleep_for(1s); // let allocations settle
  auto rss2 = rss_kib();
  auto thr2 = thread_count();
  auto socks = socket_count() - sock0;
  std::fprintf(stderr, "  pgcm: %d nodes up in %.0f ms, %d sockets, RSS +%ld KiB, %d threads\n",
               nodes, static_cast<double>(t1 - t0) / 1e6, socks, rss2 - rss1, thr2);
  auto cpu = measure_idle(seconds, probe_seconds);
  std::int64_t healthy = 0;
  for (auto& n : mgr->get_nodes())
    healthy += n.health.status == pgcm::health_state::healthy;
  std::printf("{\"ok\":%s,\"nodes\":%d,\"healthy\":%lld,\"sockets\":%d,\"startup_ms\":%.1f,"
              "\"rss_base_kib\":%ld,\"rss_system_kib\":%ld,\"rss_nodes_kib\":%ld,"
              "\"threads_base\":%d,\"threads_system\":%d,\"threads_nodes\":%d,",
              ok ? "true" : "false", nodes, static_cast<long long>(healthy), socks,
              static_cast<double>(t1 - t0) / 1e6, rss0, rss1, rss2, thr0, thr1, thr2);
  print_idle_json(cpu);
  std::printf("}\n");
  std::fflush(stdout);
  mgr.reset();
  return ok ? 0 : 1;
}

} // namespace bench
