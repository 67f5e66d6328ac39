#include "raw.hpp"

#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace bench {

namespace {

constexpr const char* stmt_name = "bench_stmt";

std::string trimmed_error(PGconn* c) {
  std::string s = c ? PQerrorMessage(c) : "out of memory";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
    s.pop_back();
  for (auto& ch : s)
    if (ch == '\n') ch = ' ';
  return s;
}

struct keyword_arrays {
  std::vector<std::pair<std::string, std::string>> kv;
  std::vector<const char*> keys;
  std::vector<const char*> values;
  explicit keyword_arrays(std::vector<std::pair<std::string, std::string>> x) : kv(std::move(x)) {
    for (auto& [k, v] : kv) {
      keys.push_back(k.c_str());
      values.push_back(v.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
  }
};

/// Blocking connect + prepare (setup only, untimed).
PGconn* connect_blocking(const cluster_info& c, const server& s, const std::string& sql,
                         bool prepare) {
  keyword_arrays kw{conn_keywords(c, s, "pgcm-bench-raw")};
  PGconn* conn = PQconnectdbParams(kw.keys.data(), kw.values.data(), 0);
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
    auto msg = trimmed_error(conn);
    PQfinish(conn);
    throw std::runtime_error("raw connect to " + s.name + " failed: " + msg);
  }
  if (prepare) {
    PGresult* r = PQprepare(conn, stmt_name, sql.c_str(), 0, nullptr);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
      auto msg = trimmed_error(conn);
      PQfinish(conn);
      throw std::runtime_error("raw prepare on " + s.name + " failed: " + msg);
    }
  }
  return conn;
}

bool result_ok(ExecStatusType st) {
  return st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
}

// Runs `callers` threads for one window of about `d`, each looping on
// `call(thread index, its first error)` (true: the op succeeded) and
// recording its latency.
template <class Call> window_result run_callers(int callers, nanoseconds d, Call call) {
  struct local {
    std::vector<std::uint32_t> lat;
    std::uint64_t ops = 0, errors = 0;
    std::string first_error;
  };
  std::vector<local> locals(static_cast<std::size_t>(callers));
  window_gate gate;
  std::vector<std::thread> threads;
  for (int i = 0; i < callers; ++i)
    threads.emplace_back([&, i] {
      auto& me = locals[static_cast<std::size_t>(i)];
      me.lat.reserve(1 << 15);
      ++gate.ready;
      while (!gate.go.load())
        std::this_thread::yield();
      while (!gate.stop.load(std::memory_order_relaxed)) {
        auto t0 = now_ns();
        bool ok = call(i, me.first_error);
        auto t1 = now_ns();
        if (gate.stop.load(std::memory_order_relaxed)) break;
        if (ok) {
          ++me.ops;
          me.lat.push_back(clamp_ns(t1 - t0));
        } else {
          ++me.errors;
        }
      }
    });
  while (gate.ready.load() < callers)
    std::this_thread::yield();
  auto t0 = now_ns();
  gate.go = true;
  std::this_thread::sleep_for(d);
  gate.stop = true;
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

// -- threads, one blocking connection each -----------------------------------

class raw_threads final : public contender {
public:
  raw_threads(cluster_info c, server s, std::string sql, int threads, bool prepared,
              bool tx = false, std::string label = {})
      : c_(std::move(c)), s_(std::move(s)), sql_(std::move(sql)), n_(threads), prepared_(prepared),
        tx_(tx), label_(std::move(label)) {}

  ~raw_threads() override { teardown(); }

  std::string name() const override {
    if (!label_.empty()) return label_;
    return tx_ ? "raw-tx-threads" : "raw-threads";
  }

  std::string describe() const override {
    if (tx_)
      return std::to_string(n_) +
             " threads x 1 blocking connection, BEGIN; PQexecPrepared(UPDATE); COMMIT";
    return std::to_string(n_) + " threads x 1 blocking connection, " +
           (prepared_ ? "PQexecPrepared" : "PQexec");
  }

  void setup() override {
    if (tx_) ensure_tx_table(c_, s_);
    for (int i = 0; i < n_; ++i)
      conns_.push_back(connect_blocking(c_, s_, sql_, prepared_));
  }

  void teardown() override {
    for (auto* c : conns_)
      PQfinish(c);
    conns_.clear();
  }

  window_result run(nanoseconds d) override {
    std::vector<std::string> rows;
    for (int i = 0; i < n_; ++i)
      rows.push_back(std::to_string(i % 64 + 1));
    return run_callers(n_, d, [&](int i, std::string& first_error) {
      PGconn* conn = conns_[static_cast<std::size_t>(i)];
      auto exec = [&](const char* sql) {
        PGresult* r = PQexec(conn, sql);
        bool ok = result_ok(PQresultStatus(r));
        PQclear(r);
        return ok;
      };
      bool ok = true;
      if (tx_) {
        const char* row_param[] = {rows[static_cast<std::size_t>(i)].c_str()};
        ok = exec("BEGIN");
        PGresult* r = PQexecPrepared(conn, stmt_name, 1, row_param, nullptr, nullptr, 0);
        ok = ok && result_ok(PQresultStatus(r));
        PQclear(r);
        ok = exec(ok ? "COMMIT" : "ROLLBACK") && ok;
      } else {
        PGresult* r = prepared_ ? PQexecPrepared(conn, stmt_name, 0, nullptr, nullptr, nullptr, 0)
                                : PQexec(conn, sql_.c_str());
        ok = result_ok(PQresultStatus(r));
        PQclear(r);
      }
      if (!ok && first_error.empty()) first_error = trimmed_error(conn);
      return ok;
    });
  }

private:
  cluster_info c_;
  server s_;
  std::string sql_;
  int n_;
  bool prepared_;
  bool tx_ = false;
  std::string label_;
  std::vector<PGconn*> conns_;
};

// -- poll() over non-blocking connections --------------------------------------

class raw_poll final : public contender {
public:
  raw_poll(cluster_info c, std::vector<server> servers, std::string sql, int conns_per_server,
           int in_flight, int depth, std::string label)
      : c_(std::move(c)), servers_(std::move(servers)), sql_(std::move(sql)),
        per_server_(conns_per_server), in_flight_(in_flight), depth_(std::max(1, depth)),
        label_(std::move(label)) {}

  ~raw_poll() override { teardown(); }

  std::string name() const override { return label_; }

  std::string describe() const override {
    std::string s = "poll() on 1 thread, " + std::to_string(per_server_) + " non-blocking conn x " +
                    std::to_string(servers_.size()) + " server(s), prepared, ";
    s +=
        depth_ > 1 ? "pipeline mode depth " + std::to_string(depth_) : std::string{"not pipelined"};
    s += ", " + std::to_string(in_flight_) + " ops outstanding";
    return s;
  }

  void setup() override {
    for (std::size_t n = 0; n < servers_.size(); ++n)
      for (int i = 0; i < per_server_; ++i) {
        PGconn* c = connect_blocking(c_, servers_[n], sql_, true);
        if (PQsetnonblocking(c, 1) != 0 || (depth_ > 1 && PQenterPipelineMode(c) != 1)) {
          auto msg = trimmed_error(c);
          PQfinish(c);
          throw std::runtime_error("raw: cannot switch connection mode: " + msg);
        }
        conn x;
        x.c = c;
        x.server = static_cast<int>(n);
        conns_.push_back(std::move(x));
      }
    queues_.resize(servers_.size());
    cur_ok_.assign(conns_.size(), true);
  }

  void teardown() override {
    for (auto& c : conns_)
      PQfinish(c.c);
    conns_.clear();
  }

  window_result run(nanoseconds d) override {
    window_result out;
    out.lat_ns.reserve(1 << 16);
    ops_.assign(static_cast<std::size_t>(in_flight_), op{});
    for (auto& q : queues_)
      q.clear();
    stopping_ = false;
    outstanding_ = 0;
    out_ = &out;
    auto t0 = now_ns();
    auto deadline = t0 + d.count();
    for (int i = 0; i < in_flight_; ++i)
      issue(i);
    std::vector<pollfd> fds(conns_.size());
    std::int64_t t1 = 0;
    while (outstanding_ > 0) {
      if (!stopping_ && now_ns() >= deadline) {
        stopping_ = true;
        t1 = now_ns();
      }
      for (std::size_t i = 0; i < conns_.size(); ++i) {
        fds[i].fd = PQsocket(conns_[i].c);
        fds[i].events = static_cast<short>(POLLIN | (conns_[i].want_write ? POLLOUT : 0));
        fds[i].revents = 0;
      }
      int timeout_ms =
          stopping_
              ? 1000
              : static_cast<int>(std::max<std::int64_t>(0, (deadline - now_ns()) / 1'000'000) + 1);
      int n = ::poll(fds.data(), static_cast<nfds_t>(fds.size()), timeout_ms);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error(std::string{"poll failed: "} + std::strerror(errno));
      }
      if (n == 0 && stopping_)
        throw std::runtime_error("raw poll: connections stuck while draining");
      for (std::size_t i = 0; i < conns_.size(); ++i) {
        if (fds[i].revents == 0) continue;
        auto& c = conns_[i];
        if (fds[i].revents & POLLOUT) {
          int f = PQflush(c.c);
          if (f < 0) throw std::runtime_error("raw poll: flush failed: " + trimmed_error(c.c));
          c.want_write = f == 1;
        }
        if (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) on_readable(i);
      }
    }
    if (t1 == 0) t1 = now_ns();
    out.seconds = static_cast<double>(t1 - t0) / 1e9;
    out_ = nullptr;
    return out;
  }

private:
  struct conn {
    PGconn* c;
    int server;
    int outstanding = 0;
    bool want_write = false;
    std::deque<int> ops; // op slots, in send order
  };
  struct op {
    std::int64_t start = 0;
    int parts_left = 0;
    bool failed = false;
  };

  void issue(int slot) {
    auto& o = ops_[static_cast<std::size_t>(slot)];
    o.start = now_ns();
    o.parts_left = static_cast<int>(servers_.size());
    o.failed = false;
    ++outstanding_;
    for (std::size_t s = 0; s < servers_.size(); ++s) {
      // FIFO: while requests wait for this server, a new one queues behind them.
      conn* best = queues_[s].empty() ? pick(static_cast<int>(s)) : nullptr;
      if (best)
        send(*best, slot);
      else
        queues_[s].push_back(slot);
    }
  }

  conn* pick(int server) {
    conn* best = nullptr;
    for (auto& c : conns_) {
      if (c.server != server || c.outstanding >= depth_) continue;
      if (!best || c.outstanding < best->outstanding) best = &c;
      if (c.outstanding == 0) break;
    }
    return best;
  }

  void send(conn& c, int slot) {
    if (PQsendQueryPrepared(c.c, stmt_name, 0, nullptr, nullptr, nullptr, 0) != 1 ||
        (depth_ > 1 && PQpipelineSync(c.c) != 1))
      throw std::runtime_error("raw poll: send failed: " + trimmed_error(c.c));
    int f = PQflush(c.c);
    if (f < 0) throw std::runtime_error("raw poll: flush failed: " + trimmed_error(c.c));
    c.want_write = f == 1;
    ++c.outstanding;
    c.ops.push_back(slot);
  }

  void part_done(int slot, bool ok) {
    auto& o = ops_[static_cast<std::size_t>(slot)];
    o.failed |= !ok;
    if (--o.parts_left > 0) return;
    --outstanding_;
    if (stopping_) return;
    if (o.failed) {
      ++out_->errors;
    } else {
      ++out_->ops;
      out_->lat_ns.push_back(clamp_ns(now_ns() - o.start));
    }
    issue(slot);
  }

  void complete_front(conn& c, bool ok) {
    int slot = c.ops.front();
    c.ops.pop_front();
    --c.outstanding;
    part_done(slot, ok);
  }

  void on_readable(std::size_t idx) {
    auto& c = conns_[idx];
    if (PQconsumeInput(c.c) == 0)
      throw std::runtime_error("raw poll: connection lost: " + trimmed_error(c.c));
    int nulls = 0;
    while (c.outstanding > 0) {
      if (PQisBusy(c.c)) break;
      PGresult* r = PQgetResult(c.c);
      if (r == nullptr) {
        if (depth_ == 1) {
          complete_front(c, cur_ok_[idx]);
          cur_ok_[idx] = true;
          continue;
        }
        if (++nulls > 1) break;
        continue;
      }
      nulls = 0;
      auto st = PQresultStatus(r);
      if (st == PGRES_PIPELINE_SYNC) {
        complete_front(c, cur_ok_[idx]);
        cur_ok_[idx] = true;
      } else if (!result_ok(st)) {
        cur_ok_[idx] = false;
        if (out_->first_error.empty()) out_->first_error = PQresultErrorMessage(r);
      }
      PQclear(r);
    }
    // Requests that waited for a free connection of this server.
    auto& q = queues_[static_cast<std::size_t>(c.server)];
    while (!q.empty()) {
      conn* w = pick(c.server);
      if (!w) break;
      int slot = q.front();
      q.pop_front();
      send(*w, slot);
    }
  }

  cluster_info c_;
  std::vector<server> servers_;
  std::string sql_;
  int per_server_;
  int in_flight_;
  int depth_;
  std::string label_;
  std::vector<conn> conns_;
  std::vector<std::deque<int>> queues_;
  std::vector<op> ops_;
  std::vector<bool> cur_ok_; // per connection: the request being read has not failed
  bool stopping_ = false;
  int outstanding_ = 0;
  window_result* out_ = nullptr;
};

// -- blocking callers sharing connections --------------------------------------
//
// The floor of what a blocking-call pool can cost in plain libpq: `callers`
// threads that each wait for their own answer share `conns` connections.
// Without pipelining (depth 1) a caller takes an idle connection from a
// mutex-guarded stack (waiting on a condition variable when there is none),
// runs PQexecPrepared on it and puts it back. With pipelining (depth > 1)
// callers hand requests to one I/O thread (a mutex-guarded queue and an
// eventfd), which drives the connections in pipeline mode with poll() as
// raw-poll-pipelined does and wakes each caller when its answer is read.

class raw_callers final : public contender {
public:
  raw_callers(cluster_info c, server s, std::string sql, int callers, int conns, int depth)
      : c_(std::move(c)), s_(std::move(s)), sql_(std::move(sql)), callers_(callers), n_(conns),
        depth_(std::max(1, depth)) {}

  ~raw_callers() override { teardown(); }

  std::string name() const override {
    return depth_ > 1 ? "raw-callers-pipelined" : "raw-callers-pooled";
  }

  std::string describe() const override {
    return std::to_string(callers_) + " blocking caller threads sharing " + std::to_string(n_) +
           " connections, prepared, " +
           (depth_ > 1 ? "one poll() thread in pipeline mode depth " + std::to_string(depth_)
                       : std::string{"a mutex-guarded idle stack, PQexecPrepared"});
  }

  void setup() override {
    for (int i = 0; i < n_; ++i) {
      PGconn* c = connect_blocking(c_, s_, sql_, true);
      if (depth_ > 1 && (PQsetnonblocking(c, 1) != 0 || PQenterPipelineMode(c) != 1)) {
        auto msg = trimmed_error(c);
        PQfinish(c);
        throw std::runtime_error("raw: cannot switch connection mode: " + msg);
      }
      conns_.push_back(c);
    }
  }

  void teardown() override {
    for (auto* c : conns_)
      PQfinish(c);
    conns_.clear();
  }

  window_result run(nanoseconds d) override {
    return depth_ > 1 ? run_pipelined(d) : run_pooled(d);
  }

private:
  window_result run_pooled(nanoseconds d) {
    std::mutex mtx;
    std::condition_variable cv;
    std::vector<PGconn*> idle = conns_;
    return run_callers(callers_, d, [&](int, std::string& first_error) {
      PGconn* conn = nullptr;
      {
        std::unique_lock<std::mutex> lk{mtx};
        cv.wait(lk, [&] { return !idle.empty(); });
        conn = idle.back();
        idle.pop_back();
      }
      PGresult* r = PQexecPrepared(conn, stmt_name, 0, nullptr, nullptr, nullptr, 0);
      bool ok = result_ok(PQresultStatus(r));
      PQclear(r);
      if (!ok && first_error.empty()) first_error = trimmed_error(conn);
      {
        std::lock_guard<std::mutex> lk{mtx};
        idle.push_back(conn);
      }
      cv.notify_one();
      return ok;
    });
  }

  // The pipelined shape: one I/O thread, callers wait for their answer.
  struct request {
    std::mutex mtx;
    std::condition_variable cv;
    bool done = false;
    bool ok = false;
  };

  window_result run_pipelined(nanoseconds d) {
    io_stop_ = false;
    efd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd_ < 0) throw std::runtime_error("raw: eventfd failed");
    std::vector<request> reqs(static_cast<std::size_t>(callers_));
    std::thread io{[this] { io_loop(); }};
    auto out = run_callers(callers_, d, [&](int i, std::string&) {
      auto& r = reqs[static_cast<std::size_t>(i)];
      r.done = false;
      {
        std::lock_guard<std::mutex> lk{q_mtx_};
        submitted_.push_back(&r);
      }
      std::uint64_t one = 1;
      if (::write(efd_, &one, sizeof one) < 0) return false;
      std::unique_lock<std::mutex> lk{r.mtx};
      r.cv.wait(lk, [&] { return r.done; });
      return r.ok;
    });
    stop_io(); // every caller has its answer and has ended
    io.join();
    ::close(efd_);
    efd_ = -1;
    return out;
  }

  void stop_io() {
    if (efd_ < 0) return;
    io_stop_ = true;
    std::uint64_t one = 1;
    (void)!::write(efd_, &one, sizeof one);
  }

  static void finish(request* r, bool ok) {
    {
      std::lock_guard<std::mutex> lk{r->mtx};
      r->done = true;
      r->ok = ok;
    }
    r->cv.notify_one();
  }

  void io_loop() {
    struct conn_state {
      std::deque<request*> sent;
      bool want_write = false;
      bool cur_ok = true;
    };
    std::vector<conn_state> cs(conns_.size());
    std::deque<request*> waiting;
    std::vector<pollfd> fds(conns_.size() + 1);
    auto send_one = [&](std::size_t i, request* r) {
      PGconn* c = conns_[i];
      if (PQsendQueryPrepared(c, stmt_name, 0, nullptr, nullptr, nullptr, 0) != 1 ||
          PQpipelineSync(c) != 1)
        throw std::runtime_error("raw callers: send failed: " + trimmed_error(c));
      int f = PQflush(c);
      if (f < 0) throw std::runtime_error("raw callers: flush failed: " + trimmed_error(c));
      cs[i].want_write = f == 1;
      cs[i].sent.push_back(r);
    };
    auto dispatch = [&] {
      while (!waiting.empty()) {
        std::size_t best = cs.size();
        for (std::size_t i = 0; i < cs.size(); ++i) {
          if (static_cast<int>(cs[i].sent.size()) >= depth_) continue;
          if (best == cs.size() || cs[i].sent.size() < cs[best].sent.size()) best = i;
          if (cs[i].sent.empty()) break;
        }
        if (best == cs.size()) return;
        send_one(best, waiting.front());
        waiting.pop_front();
      }
    };
    for (;;) {
      std::size_t in_flight = waiting.size();
      for (auto& c : cs)
        in_flight += c.sent.size();
      if (io_stop_.load() && in_flight == 0) break; // the callers have ended
      for (std::size_t i = 0; i < conns_.size(); ++i) {
        fds[i].fd = PQsocket(conns_[i]);
        fds[i].events = static_cast<short>(POLLIN | (cs[i].want_write ? POLLOUT : 0));
        fds[i].revents = 0;
      }
      fds.back() = pollfd{efd_, POLLIN, 0};
      int n = ::poll(fds.data(), static_cast<nfds_t>(fds.size()), 1000);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error(std::string{"poll failed: "} + std::strerror(errno));
      }
      if (fds.back().revents != 0) {
        std::uint64_t v = 0;
        (void)!::read(efd_, &v, sizeof v);
        std::lock_guard<std::mutex> lk{q_mtx_};
        for (auto* r : submitted_)
          waiting.push_back(r);
        submitted_.clear();
      }
      for (std::size_t i = 0; i < conns_.size(); ++i) {
        if (fds[i].revents == 0) continue;
        PGconn* c = conns_[i];
        if (fds[i].revents & POLLOUT) {
          int f = PQflush(c);
          if (f < 0) throw std::runtime_error("raw callers: flush failed: " + trimmed_error(c));
          cs[i].want_write = f == 1;
        }
        if ((fds[i].revents & (POLLIN | POLLERR | POLLHUP)) == 0) continue;
        if (PQconsumeInput(c) == 0)
          throw std::runtime_error("raw callers: connection lost: " + trimmed_error(c));
        int nulls = 0;
        while (!cs[i].sent.empty() && PQisBusy(c) == 0) {
          PGresult* r = PQgetResult(c);
          if (r == nullptr) {
            if (++nulls > 1) break;
            continue;
          }
          nulls = 0;
          auto st = PQresultStatus(r);
          if (st == PGRES_PIPELINE_SYNC) {
            finish(cs[i].sent.front(), cs[i].cur_ok);
            cs[i].sent.pop_front();
            cs[i].cur_ok = true;
          } else if (!result_ok(st)) {
            cs[i].cur_ok = false;
          }
          PQclear(r);
        }
      }
      dispatch();
    }
  }

  cluster_info c_;
  server s_;
  std::string sql_;
  int callers_;
  int n_;
  int depth_;
  std::vector<PGconn*> conns_;
  // The pipelined shape's submission queue.
  std::mutex q_mtx_;
  std::vector<request*> submitted_;
  std::atomic<bool> io_stop_{false};
  int efd_ = -1;
};

// The fan-out floor of a blocking API: `callers` threads each take one idle
// connection of every server (a mutex-guarded stack per server, taken in
// server order, so no two callers wait on each other in a cycle), send the
// statement on all of them, poll() until every one answered, and put them
// back.
class raw_callers_fanout final : public contender {
public:
  raw_callers_fanout(cluster_info c, std::vector<server> servers, std::string sql, int callers,
                     int conns_per_server)
      : c_(std::move(c)), servers_(std::move(servers)), sql_(std::move(sql)), callers_(callers),
        per_server_(conns_per_server) {}

  ~raw_callers_fanout() override { teardown(); }

  std::string name() const override { return "raw-callers-fanout"; }

  std::string describe() const override {
    return std::to_string(callers_) + " blocking caller threads, each taking 1 of " +
           std::to_string(per_server_) + " connections per server (mutex-guarded stacks) on " +
           std::to_string(servers_.size()) +
           " servers, sending on all, poll() until all answered, prepared";
  }

  void setup() override {
    stacks_.resize(servers_.size());
    for (std::size_t n = 0; n < servers_.size(); ++n)
      for (int i = 0; i < per_server_; ++i) {
        PGconn* c = connect_blocking(c_, servers_[n], sql_, true);
        if (PQsetnonblocking(c, 1) != 0) {
          auto msg = trimmed_error(c);
          PQfinish(c);
          throw std::runtime_error("raw: cannot switch connection mode: " + msg);
        }
        stacks_[n].idle.push_back(c);
        all_.push_back(c);
      }
  }

  void teardown() override {
    for (auto* c : all_)
      PQfinish(c);
    all_.clear();
    stacks_.clear();
  }

  window_result run(nanoseconds d) override {
    struct held_set {
      std::vector<PGconn*> held;
      std::vector<pollfd> fds;
      std::vector<bool> done;
    };
    std::vector<held_set> sets(static_cast<std::size_t>(callers_));
    for (auto& x : sets) {
      x.held.resize(stacks_.size());
      x.fds.resize(stacks_.size());
      x.done.resize(stacks_.size());
    }
    return run_callers(callers_, d, [&](int t, std::string& first_error) {
      auto& [held, fds, done] = sets[static_cast<std::size_t>(t)];
      for (std::size_t n = 0; n < stacks_.size(); ++n) {
        auto& st = stacks_[n];
        std::unique_lock<std::mutex> lk{st.mtx};
        st.cv.wait(lk, [&] { return !st.idle.empty(); });
        held[n] = st.idle.back();
        st.idle.pop_back();
      }
      bool ok = true;
      std::size_t left = held.size();
      for (std::size_t n = 0; n < held.size(); ++n) {
        done[n] = false;
        if (PQsendQueryPrepared(held[n], stmt_name, 0, nullptr, nullptr, nullptr, 0) != 1 ||
            PQflush(held[n]) < 0)
          throw std::runtime_error("raw callers fan-out: send failed: " + trimmed_error(held[n]));
      }
      while (left > 0) {
        for (std::size_t n = 0; n < held.size(); ++n)
          fds[n] = pollfd{done[n] ? -1 : PQsocket(held[n]), POLLIN, 0};
        if (::poll(fds.data(), static_cast<nfds_t>(fds.size()), 1000) < 0 && errno != EINTR)
          throw std::runtime_error(std::string{"poll failed: "} + std::strerror(errno));
        for (std::size_t n = 0; n < held.size(); ++n) {
          if (done[n] || fds[n].revents == 0) continue;
          if (PQconsumeInput(held[n]) == 0)
            throw std::runtime_error("raw callers fan-out: connection lost: " +
                                     trimmed_error(held[n]));
          while (!done[n] && PQisBusy(held[n]) == 0) {
            PGresult* r = PQgetResult(held[n]);
            if (r == nullptr) {
              done[n] = true;
              --left;
              break;
            }
            if (!result_ok(PQresultStatus(r))) {
              ok = false;
              if (first_error.empty()) first_error = PQresultErrorMessage(r);
            }
            PQclear(r);
          }
        }
      }
      for (std::size_t n = 0; n < held.size(); ++n) {
        auto& st = stacks_[n];
        {
          std::lock_guard<std::mutex> lk{st.mtx};
          st.idle.push_back(held[n]);
        }
        st.cv.notify_one();
      }
      return ok;
    });
  }

private:
  struct stack {
    std::mutex mtx;
    std::condition_variable cv;
    std::vector<PGconn*> idle;
  };
  cluster_info c_;
  std::vector<server> servers_;
  std::string sql_;
  int callers_;
  int per_server_;
  std::deque<stack> stacks_;
  std::vector<PGconn*> all_;
};

// -- parallel connect ----------------------------------------------------------

struct pending_connect {
  PGconn* c = nullptr;
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  bool done = false;
};

/// Drives every connection in `pc` to completion with poll() on this thread.
void connect_all(std::vector<pending_connect>& pc, int& failed, std::string& first_error) {
  std::vector<pollfd> fds;
  std::vector<std::size_t> idx;
  for (;;) {
    fds.clear();
    idx.clear();
    for (std::size_t i = 0; i < pc.size(); ++i) {
      auto& p = pc[i];
      if (p.done) continue;
      pollfd f{};
      f.fd = PQsocket(p.c);
      f.events = p.st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
      fds.push_back(f);
      idx.push_back(i);
    }
    if (fds.empty()) return;
    int n = ::poll(fds.data(), static_cast<nfds_t>(fds.size()), 10000);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      for (auto i : idx) {
        pc[i].done = true;
        ++failed;
      }
      if (first_error.empty()) first_error = "connect timeout";
      return;
    }
    for (std::size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      auto& p = pc[idx[k]];
      p.st = PQconnectPoll(p.c);
      if (p.st == PGRES_POLLING_OK) {
        p.done = true;
      } else if (p.st == PGRES_POLLING_FAILED) {
        p.done = true;
        ++failed;
        if (first_error.empty()) first_error = trimmed_error(p.c);
      }
    }
  }
}

void start_connect(const cluster_info& c, const server& s, std::vector<pending_connect>& pc,
                   int& failed, std::string& first_error) {
  keyword_arrays kw{conn_keywords(c, s, "pgcm-bench-raw")};
  pending_connect p;
  p.c = PQconnectStartParams(kw.keys.data(), kw.values.data(), 0);
  if (p.c == nullptr || PQstatus(p.c) == CONNECTION_BAD) {
    p.done = true;
    ++failed;
    if (first_error.empty()) first_error = trimmed_error(p.c);
  }
  pc.push_back(p);
}

class raw_startup final : public contender {
public:
  raw_startup(cluster_info c, std::vector<server> servers, int per_server)
      : c_(std::move(c)), servers_(std::move(servers)), per_server_(per_server) {}

  std::string name() const override { return "raw-parallel-connect"; }

  std::string describe() const override {
    return std::to_string(servers_.size() * static_cast<std::size_t>(per_server_)) +
           " x PQconnectStartParams at once, PQconnectPoll driven by poll() on 1 thread";
  }

  window_result run(nanoseconds) override {
    std::vector<pending_connect> pc;
    int failed = 0;
    std::string err;
    auto t0 = now_ns();
    for (auto& s : servers_)
      for (int i = 0; i < per_server_; ++i)
        start_connect(c_, s, pc, failed, err);
    connect_all(pc, failed, err);
    auto t1 = now_ns();
    for (auto& p : pc)
      PQfinish(p.c);
    window_result out;
    out.seconds = static_cast<double>(t1 - t0) / 1e9;
    if (failed == 0) {
      out.ops = 1;
      out.lat_ns.push_back(clamp_ns(t1 - t0));
    } else {
      out.errors = 1;
      out.first_error = std::to_string(failed) + " connections failed: " + err;
    }
    return out;
  }

private:
  cluster_info c_;
  std::vector<server> servers_;
  int per_server_;
};

} // namespace

contender_ptr make_raw_tx(const cluster_info& c, const server& srv, std::string update_sql,
                          int threads) {
  return std::make_unique<raw_threads>(c, srv, std::move(update_sql), threads, true, true);
}

void ensure_tx_table(const cluster_info& c, const server& srv) {
  PGconn* conn = connect_blocking(c, srv, {}, false);
  for (const char* sql :
       {"CREATE TABLE IF NOT EXISTS bench_tx (id int PRIMARY KEY, v bigint NOT NULL DEFAULT 0)",
        "INSERT INTO bench_tx SELECT g, 0 FROM generate_series(1, 64) g ON CONFLICT DO NOTHING"}) {
    PGresult* r = PQexec(conn, sql);
    bool ok = result_ok(PQresultStatus(r));
    PQclear(r);
    if (!ok) {
      auto msg = trimmed_error(conn);
      PQfinish(conn);
      throw std::runtime_error("bench_tx setup failed: " + msg);
    }
  }
  PQfinish(conn);
}

contender_ptr make_raw_threads(const cluster_info& c, const server& srv, std::string sql,
                               int threads, bool prepared, std::string label) {
  return std::make_unique<raw_threads>(c, srv, std::move(sql), threads, prepared, false,
                                       std::move(label));
}

contender_ptr make_raw_poll(const cluster_info& c, std::vector<server> servers, std::string sql,
                            int conns_per_server, int in_flight, int pipeline_depth,
                            std::string label) {
  return std::make_unique<raw_poll>(c, std::move(servers), std::move(sql), conns_per_server,
                                    in_flight, pipeline_depth, std::move(label));
}

contender_ptr make_raw_callers(const cluster_info& c, const server& srv, std::string sql,
                               int callers, int conns, int pipeline_depth) {
  return std::make_unique<raw_callers>(c, srv, std::move(sql), callers, conns, pipeline_depth);
}

contender_ptr make_raw_callers_fanout(const cluster_info& c, std::vector<server> servers,
                                      std::string sql, int callers, int conns_per_server) {
  return std::make_unique<raw_callers_fanout>(c, std::move(servers), std::move(sql), callers,
                                              conns_per_server);
}

contender_ptr make_raw_startup(const cluster_info& c, std::vector<server> servers, int per_server) {
  return std::make_unique<raw_startup>(c, std::move(servers), per_server);
}

raw_conn_set::~raw_conn_set() {
  for (auto* c : conns)
    PQfinish(static_cast<PGconn*>(c));
}

void open_parallel(const cluster_info& c, const std::vector<server>& targets, raw_conn_set& out) {
  std::vector<pending_connect> pc;
  for (auto& s : targets)
    start_connect(c, s, pc, out.failed, out.first_error);
  connect_all(pc, out.failed, out.first_error);
  for (auto& p : pc)
    out.conns.push_back(p.c);
}

int scale_child_raw(const cluster_info& c, int nodes, double seconds, double probe_seconds) {
  auto rss0 = rss_kib();
  auto thr0 = thread_count();
  auto sock0 = socket_count();
  std::vector<server> targets;
  for (int i = 0; i < nodes; ++i)
    targets.push_back(c.servers[static_cast<std::size_t>(i) % c.servers.size()]);
  raw_conn_set set;
  auto t0 = now_ns();
  open_parallel(c, targets, set);
  auto t1 = now_ns();
  std::this_thread::sleep_for(std::chrono::seconds{1});
  auto rss2 = rss_kib();
  auto thr2 = thread_count();
  auto socks = socket_count() - sock0;
  std::fprintf(stderr,
               "  raw: %d connections up in %.0f ms (%d failed), RSS +%ld KiB, %d threads\n", nodes,
               static_cast<double>(t1 - t0) / 1e6, set.failed, rss2 - rss0, thr2);
  auto cpu = measure_idle(seconds, probe_seconds);
  std::printf("{\"ok\":%s,\"nodes\":%d,\"sockets\":%d,\"startup_ms\":%.1f,"
              "\"rss_base_kib\":%ld,\"rss_system_kib\":%ld,\"rss_nodes_kib\":%ld,"
              "\"threads_base\":%d,\"threads_system\":%d,\"threads_nodes\":%d,",
              set.failed == 0 ? "true" : "false", nodes, socks, static_cast<double>(t1 - t0) / 1e6,
              rss0, rss0, rss2, thr0, thr0, thr2);
  print_idle_json(cpu);
  std::printf("}\n");
  std::fflush(stdout);
  return set.failed == 0 ? 0 : 1;
}

} // namespace bench
