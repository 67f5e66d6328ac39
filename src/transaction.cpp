// The blocking facade's transactions: connection_manager::with_transaction
// and pgcm::transaction, over the manager's transaction sessions (local or
// remote alike: begin_atom, then the session actor).

#include "pgcm/transaction.hpp"

#include <mutex>
#include <random>
#include <thread>
#include <variant>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include "log.hpp"
#include "pgcm/actors/remote_link.hpp"
#include "pgcm/connection_manager.hpp"
#include "pgcm/messages/error.hpp"
#include "pgcm/messages/protocol.hpp"

namespace pgcm {

std::string to_string(isolation x) {
  switch (x) {
  case isolation::read_committed:
    return "read committed";
  case isolation::repeatable_read:
    return "repeatable read";
  case isolation::serializable:
    return "serializable";
  }
  return "unknown";
}

namespace detail {

struct transaction_impl {
  /// The blocking actor that owns the session (begin's requester): when
  /// with_transaction leaves, it goes, and a session still open rolls back.
  std::unique_ptr<caf::scoped_actor> self;
  transaction_session_actor session;
  std::string node_id;
  std::chrono::steady_clock::time_point deadline;
  /// False once the function returned (a transaction kept past it is unusable).
  bool usable = true;
  std::mutex mtx; // one statement at a time, in order
};

struct transaction_access {
  static transaction make(std::shared_ptr<transaction_impl> impl) {
    return transaction{std::move(impl)};
  }
};

} // namespace detail

namespace {

using namespace std::chrono;

/// Beyond the transaction's deadline, how long a reply may take before the
/// facade gives up waiting (the session answers by the deadline plus its
/// rollback; this only guards against a lost reply).
constexpr auto reply_margin = seconds{7};

caf::timespan reply_bound(const detail::transaction_impl& t) {
  auto left = t.deadline - steady_clock::now();
  return caf::timespan{std::max<steady_clock::duration>(left, steady_clock::duration{0}) +
                       reply_margin};
}

/// One request and its reply, waiting at most `bound`. Like the facade's
/// query path: no CAF request timeout (it costs two trips to CAF's clock
/// thread per request); the bound is this thread's own timed wait.
template <class R, class Handle, class... Ts>
R ask_blocking(caf::scoped_actor& self, const Handle& dest, caf::timespan bound, Ts&&... xs) {
  if (!dest) throw error{errc::invalid_argument, "no transaction session"};
  std::optional<R> out;
  caf::error failure;
  auto req = self->new_request_id(caf::message_priority::normal);
  dest->eq_impl(req, self->ctrl(), nullptr, std::forward<Ts>(xs)...);
  caf::blocking_actor::accept_one_cond one;
  self->varargs_receive(
      one, req.response_id(), [&](R& value) { out = std::move(value); },
      [&](caf::error& err) { failure = std::move(err); },
      caf::after(bound) >> [&] { failure = caf::make_error(caf::sec::request_timeout); });
  log::release_caf_thread_logger();
  if (!out) throw error{to_error_info(failure)};
  return std::move(*out);
}

bool retryable(const error& e) {
  return e.code() == errc::query_failed && e.sqlstate() &&
         (*e.sqlstate() == "40001" || *e.sqlstate() == "40P01");
}

/// Jittered exponential backoff before rerun `attempt` (0-based):
/// somewhere in [b/2, b] with b = 5 ms * 2^attempt, at most 500 ms.
void back_off(int attempt) {
  thread_local std::minstd_rand rng{std::random_device{}()};
  auto b = milliseconds{5} * (1 << std::min(attempt, 7));
  b = std::min<milliseconds>(b, milliseconds{500});
  std::uniform_int_distribution<long long> jitter{b.count() / 2, b.count()};
  std::this_thread::sleep_for(milliseconds{jitter(rng)});
}

void rollback_quietly(detail::transaction_impl& t) {
  try {
    ask_blocking<ok_atom>(*t.self, t.session, reply_bound(t), rollback_atom::value);
  } catch (const error& e) {
    // The session rolls back on its own when it cannot be reached (its
    // owner, t.self, goes away with this call); nothing more to do.
    log::debug("node {}: rollback: {}", t.node_id, e.what());
  }
}

using where_type = std::variant<std::string, route>;

lsn run_transaction(connection_manager& mgr, const where_type& where,
                    const std::function<void(transaction&)>& fn, const transaction_options& opts) {
  if (opts.retries < 0) throw error{errc::invalid_argument, "transaction retries must be >= 0"};
  if (opts.timeout && opts.timeout->count() <= 0)
    throw error{errc::invalid_argument, "transaction timeout must be > 0 ms"};
  if (!fn) throw error{errc::invalid_argument, "with_transaction needs a function"};
  auto timeout = opts.timeout.value_or(mgr.options().query_timeout);
  auto manager = manager_handle(mgr);
  for (int attempt = 0;; ++attempt) {
    auto t = std::make_shared<detail::transaction_impl>();
    t->self = std::make_unique<caf::scoped_actor>(mgr.system());
    t->deadline = steady_clock::now() + timeout;
    auto bound = caf::timespan{seconds{5}};
    auto begun =
        std::holds_alternative<std::string>(where)
            ? ask_blocking<transaction_session>(*t->self, manager, bound, begin_atom::value,
                                                std::get<std::string>(where), opts)
            : ask_blocking<transaction_session>(*t->self, manager, bound, begin_atom::value,
                                                std::get<route>(where), opts);
    t->session = std::move(begun.session);
    t->node_id = std::move(begun.node_id);
    transaction tx = detail::transaction_access::make(t);
    try {
      fn(tx);
    } catch (const error& e) {
      t->usable = false;
      rollback_quietly(*t);
      if (retryable(e) && attempt < opts.retries) {
        log::debug("node {}: transaction attempt {} failed ({}); running it again", t->node_id,
                   attempt + 1, e.what());
        back_off(attempt);
        continue;
      }
      throw;
    } catch (...) {
      t->usable = false;
      rollback_quietly(*t);
      throw;
    }
    t->usable = false;
    try {
      return ask_blocking<lsn>(*t->self, t->session, reply_bound(*t), commit_atom::value);
    } catch (const error& e) {
      if (retryable(e) && attempt < opts.retries) {
        back_off(attempt);
        continue;
      }
      throw;
    }
  }
}

} // namespace

result_set transaction::query(const std::string& sql, std::vector<param> params) {
  auto& t = *impl_;
  std::lock_guard<std::mutex> guard{t.mtx};
  if (!t.usable)
    throw error{errc::invalid_argument,
                "node " + t.node_id + ": transaction used after its function returned"};
  return ask_blocking<result_set>(*t.self, t.session, reply_bound(t), query_atom::value, sql,
                                  std::move(params));
}

const std::string& transaction::node_id() const {
  return impl_->node_id;
}

lsn connection_manager::with_transaction(const std::string& node,
                                         const std::function<void(transaction&)>& fn,
                                         transaction_options opts) {
  return run_transaction(*this, where_type{node}, fn, opts);
}

lsn connection_manager::with_transaction(const route& r,
                                         const std::function<void(transaction&)>& fn,
                                         transaction_options opts) {
  if (r.max_lag_bytes && *r.max_lag_bytes < 0)
    throw error{errc::invalid_argument, "route max_lag_bytes must be >= 0"};
  if (r.max_lag && r.max_lag->count() < 0)
    throw error{errc::invalid_argument, "route max_lag must be >= 0 ms"};
  return run_transaction(*this, where_type{r}, fn, opts);
}

} // namespace pgcm
