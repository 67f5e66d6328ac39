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

namespace std {

// CAF 0.17 cannot inspect std::optional; route it through caf::optional.
template <class Inspector, class T>
typename Inspector::result_type inspect(Inspector& f, optional<T>& x) {
  caf::optional<T> tmp;
  if (x) tmp = *x;
  auto load = caf::meta::load_callback([&]() -> caf::error {
    if (tmp)
      x = std::move(*tmp);
    else
      x = std::nullopt;
    return caf::none;
  });
  return f(tmp, load);
}

} // namespace std

namespace pgcm {

namespace detail {

template <class Inspector>
constexpr bool is_stringifier_v =
    std::is_same<Inspector, caf::detail::stringification_inspector>::value;

} // namespace detail

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, error_info& x) {
  return f(caf::meta::type_name("pgcm::error_info"), x.code, x.message, x.sqlstate);
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
           s.nulls, s.rows, s.affected_rows, s.command, check);
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
    return f(caf::meta::type_name("pgcm::node_config"), x.host, x.port, x.database, x.user,
             x.password, x.ssl, x.pool, x.application_name);
  }
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, manager_options& x) {
  return f(caf::meta::type_name("pgcm::manager_options"), x.health_check_interval,
           x.unhealthy_threshold, x.shutdown_timeout, x.query_timeout, x.health_check_timeout,
           x.connect_timeout, x.reconnect_backoff_initial, x.reconnect_backoff_max);
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
  return f(caf::meta::type_name("pgcm::health_status"), x.status, latency_us,
           x.consecutive_failures, x.last_error, checked_ns, x.role, load);
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
  return f(caf::meta::type_name("pgcm::node_event"), x.type, x.node_id, x.health, x.stats, x.error);
}

template <class Inspector, class Data>
typename Inspector::result_type inspect(Inspector& f, basic_node_result<Data>& x) {
  return f(caf::meta::type_name("pgcm::node_result"), x.node_id, x.success, x.data, x.error);
}

} // namespace pgcm
