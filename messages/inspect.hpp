#pragma once

// CAF `inspect` overloads for pgcm's public value types (src/pgcm/*.hpp are
// CAF-free). Found by argument-dependent lookup, so they live in the types'
// namespaces. Serialization carries passwords (a remote add_node needs them);
// stringification (logs, to_string of messages) never shows them.

#include <chrono>
#include <optional>
#include <type_traits>

#include <caf/detail/stringification_inspector.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/optional.hpp>
#include <caf/sec.hpp>

#include "pgcm/param.hpp"
#include "pgcm/result_set.hpp"
#include "pgcm/types.hpp"

namespace pgcm {

namespace detail {

template <class Inspector>
constexpr bool is_stringifier_v =
    std::is_same<Inspector, caf::detail::stringification_inspector>::value;

/// CAF 0.17 cannot inspect std::optional, and an `inspect` overload for it
/// may not go into namespace std (undefined behaviour). Fields of type
/// std::optional<T> are inspected through this view instead: on the wire a
/// caf::optional<T>, the same bytes as before.
template <class T> struct optional_field { std::optional<T>& ref; };

template <class T> optional_field<T> opt(std::optional<T>& x) {
  return optional_field<T>{x};
}

template <class Inspector, class T>
typename Inspector::result_type inspect(Inspector& f, optional_field<T>& x) {
  caf::optional<T> tmp;
  if (x.ref) tmp = *x.ref;
  auto load = caf::meta::load_callback([&]() -> caf::error {
    if (tmp)
      x.ref = std::move(*tmp);
    else
      x.ref = std::nullopt;
    return caf::none;
  });
  return f(tmp, load);
}

} // namespace detail

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, error_info& x) {
  auto sqlstate = detail::opt(x.sqlstate);
  return f(caf::meta::type_name("pgcm::error_info"), x.code, x.message, sqlstate);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, param& x) {
  return f(caf::meta::type_name("pgcm::param"), x.null, x.text);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, result_set& x) {
  auto& s = x.raw();
  // Rows read cells by offset: never accept an inconsistent payload from a peer.
  auto check = caf::meta::load_callback([&]() -> caf::error {
    if (s.is_consistent()) return caf::none;
    s = result_set::storage{};
    return caf::make_error(caf::sec::state_not_serializable);
  });
  return f(caf::meta::type_name("pgcm::result_set"), s.names, s.type_oids, s.values, s.ends,
           s.nulls, s.rows, s.affected_rows, s.command, s.node_id, s.commit_lsn, check);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, ssl_config& x) {
  return f(caf::meta::type_name("pgcm::ssl_config"), x.enabled, x.reject_unauthorized, x.ca);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, pool_config& x) {
  return f(caf::meta::type_name("pgcm::pool_config"), x.min, x.max, x.pipeline_depth, x.max_waiting,
           x.statement_cache);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, node_config& x) {
  if constexpr (detail::is_stringifier_v<Inspector>) {
    // Never render the password, not even in debug output.
    std::string pw = x.password ? "<redacted>" : "<none>";
    return f(caf::meta::type_name("pgcm::node_config"), x.host, x.port, x.database, x.user, pw,
             x.ssl, x.pool, x.application_name);
  } else {
    auto password = detail::opt(x.password);
    return f(caf::meta::type_name("pgcm::node_config"), x.host, x.port, x.database, x.user,
             password, x.ssl, x.pool, x.application_name);
  }
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, manager_options& x) {
  return f(caf::meta::type_name("pgcm::manager_options"), x.health_check_interval,
           x.unhealthy_threshold, x.shutdown_timeout, x.query_timeout, x.health_check_timeout,
           x.connect_timeout, x.reconnect_backoff_initial, x.reconnect_backoff_max,
           x.healthy_threshold, x.unhealthy_check_interval, x.primary_wait);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, lsn& x) {
  return f(caf::meta::type_name("pgcm::lsn"), x.value);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, route& x) {
  auto max_lag_bytes = detail::opt(x.max_lag_bytes);
  auto max_lag = detail::opt(x.max_lag);
  auto after = detail::opt(x.after);
  return f(caf::meta::type_name("pgcm::route"), x.to, max_lag_bytes, max_lag, after, x.want_lsn);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, health_status& x) {
  std::int64_t latency_us = x.latency.count();
  std::int64_t checked_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(x.last_check.time_since_epoch()).count();
  auto load = caf::meta::load_callback([&]() -> caf::error {
    x.latency = microseconds{latency_us};
    x.last_check = std::chrono::system_clock::time_point{
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::nanoseconds{checked_ns})};
    return caf::none;
  });
  auto last_error = detail::opt(x.last_error);
  auto wal_lsn = detail::opt(x.wal_lsn);
  auto receive_lsn = detail::opt(x.receive_lsn);
  auto lag_bytes = detail::opt(x.lag_bytes);
  auto lag = detail::opt(x.lag);
  auto conflict = detail::opt(x.conflict);
  return f(caf::meta::type_name("pgcm::health_status"), x.status, latency_us,
           x.consecutive_failures, last_error, checked_ns, x.role, x.timeline, x.system_identifier,
           wal_lsn, receive_lsn, lag_bytes, lag, conflict, load);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, pool_stats& x) {
#define PGCM_X(name) , x.name
#define PGCM_XB(name, bound_us) , x.name
  return f(caf::meta::type_name("pgcm::pool_stats"), x.node_id PGCM_POOL_GAUGES(PGCM_X)
                                                         PGCM_POOL_COUNTERS(PGCM_X)
                                                             PGCM_QUERY_DURATION_BUCKETS(PGCM_XB));
#undef PGCM_XB
#undef PGCM_X
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, node_info& x) {
  return f(caf::meta::type_name("pgcm::node_info"), x.id, x.config, x.health, x.pool);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, node_event& x) {
  auto health = detail::opt(x.health);
  auto stats = detail::opt(x.stats);
  auto error = detail::opt(x.error);
  return f(caf::meta::type_name("pgcm::node_event"), x.type, x.node_id, health, stats, error);
}

template <class Inspector, class Data>
typename Inspector::result_type inspect(Inspector& f, basic_node_result<Data>& x) {
  auto error = detail::opt(x.error);
  return f(caf::meta::type_name("pgcm::node_result"), x.node_id, x.success, x.data, error);
}

} // namespace pgcm
