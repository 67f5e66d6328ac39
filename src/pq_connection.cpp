#include "pq_connection.hpp"

#include <cctype>
#include <cstdlib>
#include <cstring>

#include <libpq-fe.h>

#include "pq_result.hpp"

namespace pgcm::detail {

namespace {

/// True for the SQLSTATEs of a session the server ended on purpose
/// (57P01 admin shutdown / pg_terminate_backend, 57P02 crash shutdown,
/// 57P03 cannot connect now).
bool ends_session(const char* severity, const char* sqlstate) {
  bool fatal =
      severity && (std::strcmp(severity, "FATAL") == 0 || std::strcmp(severity, "PANIC") == 0);
  return fatal && sqlstate && std::strncmp(sqlstate, "57P0", 4) == 0;
}

} // namespace

std::string trimmed_message(const char* msg) {
  std::string s = msg ? msg : "";
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.pop_back();
  // libpq prefixes server messages with "ERROR:  " / "FATAL:  ".
  for (const char* prefix : {"ERROR:  ", "FATAL:  ", "PANIC:  "})
    if (s.rfind(prefix, 0) == 0) s.erase(0, std::strlen(prefix));
  return s;
}

// -- conn_params --------------------------------------------------------------

void conn_params::set(const std::string& key, std::string value) {
  for (std::size_t i = 0; i < keys.size(); ++i)
    if (keys[i] == key) {
      values[i] = std::move(value);
      return;
    }
  keys.push_back(key);
  values.push_back(std::move(value));
}

conn_params conn_params::from(const node_config& cfg, const std::string& hostaddr,
                              std::chrono::milliseconds connect_timeout) {
  conn_params p;
  p.set("host", cfg.host);
  if (!hostaddr.empty()) p.set("hostaddr", hostaddr);
  p.set("port", std::to_string(cfg.port));
  p.set("dbname", cfg.database);
  p.set("user", cfg.user);
  if (cfg.password) p.set("password", *cfg.password);
  p.set("application_name", cfg.application_name);
  p.set("client_encoding", "UTF8");
  // pgcm enforces connect deadlines itself (libpq ignores connect_timeout in
  // non-blocking mode); set it anyway for the blocking PQcancel path.
  auto secs = std::max<long long>(1, (connect_timeout.count() + 999) / 1000);
  p.set("connect_timeout", std::to_string(secs));
  // Detect dead peers without waiting for the kernel's defaults.
  p.set("keepalives", "1");
  p.set("keepalives_idle", "5");
  p.set("keepalives_interval", "2");
  p.set("keepalives_count", "3");
  p.set("tcp_user_timeout", std::to_string(std::max<long long>(connect_timeout.count(), 1000)));
  if (cfg.ssl.enabled) {
    if (cfg.ssl.reject_unauthorized) {
      p.set("sslmode", "verify-full");
      p.set("sslrootcert", cfg.ssl.ca);
    } else {
      p.set("sslmode", "require");
      if (!cfg.ssl.ca.empty()) p.set("sslrootcert", cfg.ssl.ca);
    }
  } else {
    // Explicit, so that a PGSSLMODE in the environment cannot override the
    // config (the CLI maps libpq's environment into the config itself).
    p.set("sslmode", "disable");
  }
  return p;
}

namespace {

/// Index of the first character of `sql` after white space and comments.
std::size_t skip_space_and_comments(const std::string& sql, std::size_t i) {
  const auto n = sql.size();
  for (;;) {
    while (i < n && std::isspace(static_cast<unsigned char>(sql[i])))
      ++i;
    if (i + 1 < n && sql[i] == '-' && sql[i + 1] == '-') {
      while (i < n && sql[i] != '\n')
        ++i;
    } else if (i + 1 < n && sql[i] == '/' && sql[i + 1] == '*') {
      auto end = sql.find("*/", i + 2);
      i = end == std::string::npos ? n : end + 2;
    } else {
      return i;
    }
  }
}

/// Whether the keyword `word` (upper case) starts at `i`; on success `i`
/// moves past it.
bool keyword_at(const std::string& sql, std::size_t& i, const char* word) {
  auto len = std::strlen(word);
  if (i + len > sql.size()) return false;
  for (std::size_t k = 0; k < len; ++k)
    if (std::toupper(static_cast<unsigned char>(sql[i + k])) != word[k]) return false;
  if (i + len != sql.size() &&
      (std::isalnum(static_cast<unsigned char>(sql[i + len])) || sql[i + len] == '_'))
    return false;
  i += len;
  return true;
}

} // namespace

bool opens_transaction(const std::string& sql) {
  auto i = skip_space_and_comments(sql, 0);
  auto j = i;
  return keyword_at(sql, i, "BEGIN") || keyword_at(sql, j, "START");
}

std::string transaction_statement_problem(const std::string& sql) {
  auto start = skip_space_and_comments(sql, 0);
  auto i = start;
  auto word = [&](const char* w) {
    i = start;
    return keyword_at(sql, i, w);
  };
  auto then_word = [&](const char* w) {
    i = skip_space_and_comments(sql, i);
    return keyword_at(sql, i, w);
  };
  if (word("BEGIN") || (word("START") && then_word("TRANSACTION")))
    return "a statement that opens a transaction (BEGIN / START TRANSACTION) cannot run through "
           "query(): pooled connections are shared; use connection_manager::with_transaction "
           "(actor API: begin_atom) to run statements in one transaction";
  bool ends = word("COMMIT") || word("END") || word("ABORT");
  if (!ends && word("ROLLBACK")) {
    // ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name stays in the transaction.
    auto after = i;
    if (!then_word("WORK") && !then_word("TRANSACTION")) i = after;
    ends = !then_word("TO");
  }
  if (ends)
    return "COMMIT / ROLLBACK / END / ABORT cannot run through query(): each query() runs in a "
           "transaction of its own; use connection_manager::with_transaction (actor API: "
           "begin_atom, then commit_atom / rollback_atom)";
  return {};
}

// -- pq_connection ------------------------------------------------------------

bool pq_connection::start(const conn_params& params, std::string& err) {
  close();
  server_ended_session_ = false;
  std::vector<const char*> keys;
  std::vector<const char*> values;
  keys.reserve(params.keys.size() + 1);
  values.reserve(params.keys.size() + 1);
  for (std::size_t i = 0; i < params.keys.size(); ++i) {
    keys.push_back(params.keys[i].c_str());
    values.push_back(params.values[i].c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  conn_ = PQconnectStartParams(keys.data(), values.data(), 0);
  if (conn_ == nullptr) {
    err = "out of memory";
    return false;
  }
  if (PQstatus(conn_) == CONNECTION_BAD) {
    err = last_error();
    return false;
  }
  // Notices (e.g. "there is no transaction in progress") are not errors and
  // are dropped (libpq's default would print them to stderr). One matters: a
  // FATAL the server sends while no request is pending (it terminates an idle
  // session) reaches libpq as a notice, and the EOF behind it may not have
  // been read yet: remember it, so that the connection is not used again.
  PQsetNoticeReceiver(
      conn_,
      [](void* arg, const PGresult* r) {
        if (ends_session(PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED),
                         PQresultErrorField(r, PG_DIAG_SQLSTATE)))
          static_cast<pq_connection*>(arg)->server_ended_session_ = true;
      },
      this);
  return true;
}

pq_connection::connect_status pq_connection::poll_connect(std::string& err) {
  switch (PQconnectPoll(conn_)) {
  case PGRES_POLLING_READING:
    return connect_status::reading;
  case PGRES_POLLING_WRITING:
    return connect_status::writing;
  case PGRES_POLLING_OK:
    if (PQsetnonblocking(conn_, 1) != 0 || PQenterPipelineMode(conn_) != 1) {
      err = last_error();
      return connect_status::failed;
    }
    return connect_status::ready;
  default:
    err = last_error();
    return connect_status::failed;
  }
}

int pq_connection::socket() const {
  return conn_ ? PQsocket(conn_) : -1;
}

bool pq_connection::send(const std::string& sql, const std::vector<param>& params,
                         std::string& err) {
  const auto n = params.size();
  // Small-vector for the common case of few parameters.
  const char* small[16];
  std::vector<const char*> big;
  const char** values = small;
  if (n > 16) {
    big.resize(n);
    values = big.data();
  }
  for (std::size_t i = 0; i < n; ++i)
    values[i] = params[i].null ? nullptr : params[i].text.c_str();
  pending_request req;
  const auto nparams = static_cast<int>(n);
  bool sent = false;
  if (cache_capacity_ > 0) {
    auto it = statements_.find(sql);
    if (it != statements_.end()) {
      req.statement = it->second;
      sent =
          PQsendQueryPrepared(conn_, it->second.c_str(), nparams, values, nullptr, nullptr, 0) == 1;
    } else if (statements_.size() < static_cast<std::size_t>(cache_capacity_)) {
      req.statement = "pgcm_" + std::to_string(next_statement_++);
      req.prepared_sql = sql;
      sent = PQsendPrepare(conn_, req.statement.c_str(), sql.c_str(), 0, nullptr) == 1 &&
             PQsendQueryPrepared(conn_, req.statement.c_str(), nparams, values, nullptr, nullptr,
                                 0) == 1;
      if (sent) statements_.emplace(sql, req.statement);
    }
  }
  if (!sent && req.statement.empty())
    sent =
        PQsendQueryParams(conn_, sql.c_str(), nparams, nullptr, values, nullptr, nullptr, 0) == 1;
  if (!sent || PQpipelineSync(conn_) != 1) {
    err = last_error();
    return false;
  }
  pending_.push_back(std::move(req));
  return true;
}

int pq_connection::flush() {
  return PQflush(conn_);
}

bool pq_connection::consume(std::string& err) {
  if (PQconsumeInput(conn_) == 0) {
    err = last_error();
    return false;
  }
  return true;
}

void pq_connection::forget_statement(const std::string& sql) {
  statements_.erase(sql);
}

void pq_connection::record_error(pending_request& p, const PGresult* r) {
  if (!p.outcome.error.empty()) return; // keep the first error of the request
  p.outcome.ok = false;
  const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  p.outcome.error = primary ? trimmed_message(primary) : trimmed_message(PQresultErrorMessage(r));
  if (p.outcome.error.empty()) p.outcome.error = last_error();
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  p.outcome.sqlstate = state ? state : "";
  const char* severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
  p.outcome.fatal =
      (severity && (std::strcmp(severity, "FATAL") == 0 || std::strcmp(severity, "PANIC") == 0)) ||
      PQstatus(conn_) == CONNECTION_BAD;
  if (ends_session(severity, state)) server_ended_session_ = true;
  // A cached statement that vanished (26000) or whose result type changed
  // (0A000, "cached plan must not change result type"): the statement did not
  // run; drop it from the cache so the retry prepares it again.
  if (!p.statement.empty() && p.prepared_sql.empty() &&
      (p.outcome.sqlstate == "26000" || p.outcome.sqlstate == "0A000")) {
    p.outcome.stale_statement = true;
    for (auto it = statements_.begin(); it != statements_.end(); ++it)
      if (it->second == p.statement) {
        statements_.erase(it);
        break;
      }
  }
}

bool pq_connection::read_results(std::vector<pq_outcome>& done) {
  int nulls_in_a_row = 0;
  while (!pending_.empty()) {
    if (PQisBusy(conn_) != 0) break;
    PGresult* r = PQgetResult(conn_);
    auto& p = pending_.front();
    if (r == nullptr) {
      if (PQstatus(conn_) == CONNECTION_BAD) return false;
      if (++nulls_in_a_row > 1) break;
      continue;
    }
    nulls_in_a_row = 0;
    switch (PQresultStatus(r)) {
    case PGRES_PIPELINE_SYNC:
      if (p.outcome.error.empty()) p.outcome.ok = true;
      done.push_back(std::move(p.outcome));
      pending_.pop_front();
      break;
    case PGRES_PIPELINE_ABORTED:
      if (p.outcome.error.empty()) {
        p.outcome.error = "statement skipped: an earlier step of the same request failed";
        p.outcome.ok = false;
      }
      break;
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
      if (!p.prepared_sql.empty() && !p.prepare_done)
        p.prepare_done = true;
      else
        p.outcome.result = to_result_set(r);
      break;
    case PGRES_SINGLE_TUPLE:
      break;
    case PGRES_COPY_IN:
    case PGRES_COPY_OUT:
    case PGRES_COPY_BOTH:
      // COPY is not supported in pipeline mode; the session cannot go on.
      if (p.outcome.error.empty()) p.outcome.error = "COPY is not supported by pgcm";
      PQclear(r);
      return false;
    default: // PGRES_FATAL_ERROR, PGRES_NONFATAL_ERROR, PGRES_BAD_RESPONSE
      if (!p.prepared_sql.empty() && !p.prepare_done) {
        p.prepare_done = true;
        forget_statement(p.prepared_sql);
      }
      record_error(p, r);
      break;
    }
    PQclear(r);
  }
  if (pending_.empty() && PQisBusy(conn_) == 0) {
    // Nothing pending: still let libpq parse what arrived. After a pipeline
    // sync libpq stays in PIPELINE_IDLE until PQgetResult is called once
    // more, and there it leaves unexpected messages unparsed (and drops them
    // with its input buffer at EOF). In IDLE, the FATAL the server sends when
    // it ends an idle session (pg_terminate_backend, shutdown) reaches the
    // notice receiver, which marks the session as ended.
    if (PGresult* r = PQgetResult(conn_)) PQclear(r);
    PQisBusy(conn_);
  }
  return PQstatus(conn_) != CONNECTION_BAD;
}

bool pq_connection::idle_in_session() const {
  return conn_ != nullptr && PQtransactionStatus(conn_) == PQTRANS_IDLE;
}

pg_cancel* pq_connection::make_cancel() const {
  return conn_ ? PQgetCancel(conn_) : nullptr;
}

std::string pq_connection::last_error() const {
  if (conn_ == nullptr) return "no connection";
  auto s = trimmed_message(PQerrorMessage(conn_));
  // libpq joins multi-line messages (one per address tried); keep them on one line.
  for (auto& c : s)
    if (c == '\n') c = ' ';
  return s.empty() ? "connection lost" : s;
}

void pq_connection::close() {
  if (conn_ != nullptr) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
  pending_.clear();
  statements_.clear();
}

int pq_connection::backend_pid() const {
  return conn_ ? PQbackendPID(conn_) : 0;
}

} // namespace pgcm::detail
