#pragma once

// The lease: a facade caller runs its query on an idle pool connection
// itself, on its own thread, with no CAF message on the way (issue 11).
//
// A node supervisor owns one lease_pool (shared with its workers and with
// the facade). An idle connection worker *parks* its connection there: its
// socket is then not watched by the reactor. A facade caller takes a parked
// connection (`take`), checks it unless it was busy less than 10 ms ago
// (readable while idle: the server closed
// it), runs libpq on it (send, poll() its socket until the deadline, read,
// convert) and hands it back (`give_back`). Ownership of the PGconn moves
// with the slot's `at` (docs/threading.md I6-I8): only the worker touches it
// while `at == worker`, only the lessee (its `holder` thread) while
// `at == leased`, nobody while `at == parked`.
//
// The connection object is shared (worker and lessee): a worker that ends
// while its connection is leased never frees the PGconn under the caller;
// the last owner closes it.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/weak_intrusive_ptr.hpp>

#include "pgcm/messages/internal_protocol.hpp"
#include "pgcm/result_set.hpp"
#include "pq_connection.hpp"

namespace pgcm {
struct worker_counters;
}

namespace pgcm::detail {

class pq_connection;

/// How a lessee hands a connection back (lease_atom's first argument when
/// the worker gets it back by message).
enum class lease_return : std::int32_t {
  ok = 0,     // usable; the worker parks it again or runs its deferred requests
  check = 1,  // readable while idle: the worker reads it and fails it if the server ended it
  broken = 2, // the connection broke (the worker fails it: events, replacement)
  retire = 3, // left in a transaction: the worker retires it
  /// Its statement passed its deadline (or the pool's stop deadline) and the
  /// lessee sent a cancel: the worker takes the statement over (reads its
  /// end, drops the connection if it does not end within the cancel grace).
  cancelled = 4,
};

/// One connection as it moves between its worker and lessees.
struct lease_slot {
  enum where : int { worker = 0, parked = 1, leased = 2 };

  std::shared_ptr<pq_connection> conn;
  caf::weak_actor_ptr owner; // the worker (lease_atom messages)
  std::shared_ptr<worker_counters> counters;

  /// Who may touch `conn` (changed under the pool's mutex; read anywhere).
  std::atomic<int> at{worker};
  /// The lessee's thread while leased (debug checks, I7).
  std::atomic<std::thread::id> holder{};
  // Guarded by the pool's mutex:
  bool wanted = false;   // the worker has requests for it: come back by message
  bool orphaned = false; // the worker ended: a returner closes it

  /// When the lessee last sent a cancel on it (a late cancel may hit the
  /// next statement: 57014 within 2 s of it is retried). Touched only by
  /// the current lessee.
  std::int64_t last_cancel_ns = 0;
  /// When a statement last ended well on it and it became idle (parked by
  /// its worker, or given back `ok`): a connection idle for less than
  /// `lease_recent_ns` is not checked before use (its end would show as the
  /// server's FATAL message, which retries the statement). Written and read
  /// under the pool's mutex or by the slot's holder.
  std::int64_t quiet_since_ns = 0;
};

/// A leased connection idle for less than this is used without the
/// readable-while-idle check (one `poll` less per query on a busy pool).
constexpr std::int64_t lease_recent_ns = 10'000'000;

/// The handoff between a node supervisor's idle workers and facade callers.
struct lease_pool {
  std::string node_id;
  std::chrono::milliseconds cancel_grace{2000};

  /// Set by a facade that leases from this pool: only then do idle workers
  /// park (an actor-API-only application pays nothing for leases).
  std::atomic<bool> used{false};
  /// The supervisor stops (shutdown, remove_node): nothing is leased any
  /// more; a lessee past `stop_deadline_ns` (steady ns, 0: none) cancels its
  /// statement and answers shutting_down.
  std::atomic<bool> closed{false};
  /// Set by the supervisor while every connection the pool may have is open
  /// and ready: a caller finding none idle then waits here for one to come
  /// back instead of pipelining behind a leased one. A returner keeps
  /// going on its own connection (no wake-up) unless the first waiter has
  /// waited 2 ms already: then it is handed over directly (in
  /// arrival order). Nobody waits while no connection is leased.
  std::atomic<bool> full{false};
  std::atomic<std::int64_t> stop_deadline_ns{0};

  /// The supervisor (stats notifications from lessees).
  caf::weak_actor_ptr supervisor;
  std::atomic<std::int64_t> last_notify_ns{0};

  // -- the worker's side --------------------------------------------------

  /// Parks `s` (the worker held it). False if the pool is closed.
  bool park(const std::shared_ptr<lease_slot>& s);
  /// The worker wants its connection back: true if it holds it now; false
  /// if it is leased (it comes back with a lease_atom message).
  bool reclaim(lease_slot& s);
  /// The supervisor routes a request to the slot's worker: a parked
  /// connection is the worker's again at once (no lessee takes it before
  /// the request arrives); a leased one comes back by message.
  void reserve(lease_slot& s) { reclaim(s); }
  /// The worker ends: a parked slot leaves the pool, a leased one is closed
  /// by its returner.
  void orphan(lease_slot& s);

  // -- the lessee's side --------------------------------------------------

  /// An idle connection, now held by this thread, or null. With `wait_until`
  /// (steady ns, 0: no waiting) and the pool full, waits for one that comes
  /// back, at most until then.
  std::shared_ptr<lease_slot> take(std::int64_t wait_until = 0);
  /// Hands `s` back, counting one answer in `counts` (added to the stats).
  void give_back(std::shared_ptr<lease_slot> s, lease_return how, const std::string& why,
                 const worker_report& counts);

  // -- the supervisor's side ------------------------------------------------

  void close(std::int64_t stop_deadline);
  /// Sets `full` (waiters go to the supervisor when it is cleared).
  void set_full(bool value);
  /// The counts of leased queries since the last call.
  worker_report take_counts();
  std::size_t parked() const;
  /// Callers waiting for a connection to come back (waiting_requests).
  std::int64_t waiting() const;

private:
  struct waiter {
    std::condition_variable cv;
    std::thread::id thread;
    std::int64_t since_ns = 0;
    std::shared_ptr<lease_slot> got;
  };
  /// Hands `s` (held by nobody) to the first waiter; false if none waits.
  /// Called with mtx_ held.
  bool hand_over(const std::shared_ptr<lease_slot>& s);

  mutable std::mutex mtx_;
  std::deque<waiter*> waiters_;
  int leased_now_ = 0; // connections held by callers (they come back)
  std::vector<std::shared_ptr<lease_slot>> idle_;
  worker_report counts_;
  bool has_counts_ = false;
};

/// The lease pool of the node supervisor `sup` (a local one), or null.
std::shared_ptr<lease_pool> find_lease_pool(const caf::actor_control_block* sup);
void register_lease_pool(const caf::actor_control_block* sup, std::shared_ptr<lease_pool> p);
void unregister_lease_pool(const caf::actor_control_block* sup);

/// What running a query on a lease came to.
struct lease_outcome {
  enum kind_t { not_run, answered } kind = not_run;
  std::optional<result_set> result; // answered: the result, or
  caf::error error;                 // answered: the error
};

/// One query on a leased connection, driven by its caller's thread: a small
/// state machine so that one thread can run several at once (a fan-out,
/// one per node) with one `poll()` over their sockets (`drive_leased`).
/// `start` takes an idle connection, checks it, sends and flushes; then the
/// driver polls `fd()` for `events()` until `wake_at()`, hands what it saw
/// to `on_ready` and calls `on_time` each round (the query's deadline and
/// the pool's stop deadline: cancel on the server). A statement that
/// certainly did not run is tried once more on another lease (or, none
/// idle, it ends `not_run` with `attempt` 1: the actor way). Not copyable:
/// it holds a lease while it runs.
class leased_query {
public:
  /// `job` must outlive this.
  leased_query(lease_pool& pool, query_job& job) : pool_(&pool), job_(&job) {}
  leased_query(const leased_query&) = delete;
  leased_query& operator=(const leased_query&) = delete;
  ~leased_query();

  /// Takes a connection (`wait_until`: lease_pool::take, 0 no waiting) and
  /// sends the statement. True while it runs; else `outcome()` says.
  bool start(std::int64_t wait_until);
  bool running() const { return running_; }
  int fd() const { return fd_; }
  short events() const;
  /// When the driver must call `on_time` at the latest (steady ns).
  std::int64_t wake_at(std::int64_t now) const;
  /// The socket reported `revents`.
  void on_ready(short revents);
  /// Checks the deadlines at `now` (cancels on the server past them).
  void on_time(std::int64_t now);
  /// The driver's poll() failed: the statement may have run; answer so.
  void on_poll_failed();
  /// Meaningful once not running.
  lease_outcome& outcome() { return out_; }
  lease_pool& pool() const { return *pool_; }

private:
  void settle(); // the statement ended, broke or was cancelled: answer or retry
  void fail(std::string why);
  lease_pool* pool_;
  query_job* job_;
  std::int64_t wait_until_ = 0;
  int tries_ = 0;
  std::shared_ptr<lease_slot> s_;
  int fd_ = -1;
  int flushing_ = 0;
  bool running_ = false;
  bool broken_ = false;
  bool cancelled_ = false;
  bool stopped_ = false;
  std::string broken_why_;
  std::vector<pq_outcome> done_;
  worker_report counts_;
  lease_outcome out_;
};

/// Runs the running ones of `qs` (each on a lease of a different pool:
/// threading.md I6) to their end on this thread, one poll() over all.
void drive_leased(const std::vector<leased_query*>& qs);

/// Runs `job` on a leased connection of `pool`, on this thread (a
/// leased_query of one). `not_run`: no idle connection (or none usable);
/// the job certainly did not run (its `attempt` is 1 if it was already
/// tried once): send it the actor way.
lease_outcome run_leased(lease_pool& pool, query_job& job);

/// How many leases were taken in this process (tests: did a query go the
/// lease way).
std::uint64_t leases_taken();

/// Counts one answer to a job started at `start_ns` in `r`'s histogram.
void observe_duration(worker_report& r, std::int64_t start_ns, std::int64_t now_ns);

} // namespace pgcm::detail
