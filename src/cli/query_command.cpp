// pgcm query: SQL on one node, every node or the healthy ones.

#include <iostream>

#include "cli_logging.hpp"
#include "commands.hpp"
#include "json_writer.hpp"
#include "manager_source.hpp"
#include "shutdown_signals.hpp"
#include "text_table.hpp"

namespace pgcm::cli {

namespace {

// PostgreSQL type OIDs printed right-aligned (numbers) or as JSON numbers /
// booleans.
constexpr std::uint32_t bool_oid = 16;
constexpr std::uint32_t int8_oid = 20;
constexpr std::uint32_t int2_oid = 21;
constexpr std::uint32_t int4_oid = 23;
constexpr std::uint32_t oid_oid = 26;
constexpr std::uint32_t float4_oid = 700;
constexpr std::uint32_t float8_oid = 701;
constexpr std::uint32_t money_oid = 790;
constexpr std::uint32_t numeric_oid = 1700;

bool is_integer_type(std::uint32_t oid) {
  return oid == int8_oid || oid == int2_oid || oid == int4_oid || oid == oid_oid;
}

bool is_numeric_type(std::uint32_t oid) {
  return is_integer_type(oid) || oid == float4_oid || oid == float8_oid || oid == money_oid ||
         oid == numeric_oid;
}

/// PostgreSQL's integer output that is also a JSON number: -?[0-9]+.
bool is_json_integer(std::string_view text) {
  auto digits = text.substr(!text.empty() && text[0] == '-' ? 1 : 0);
  return !digits.empty() && digits.find_first_not_of("0123456789") == std::string_view::npos;
}

std::string describe_error(const error_info& e) {
  std::string out = "error (" + to_string(e.code) + "): " + e.message;
  if (e.sqlstate) out += " [SQLSTATE " + *e.sqlstate + "]";
  return out;
}

/// Prints one node's result as it streams in: begin, chunks, then ok or failed.
class printer {
public:
  virtual ~printer() = default;
  virtual void chunk(const std::string& node, const result_set& rs) = 0;
  virtual void ok(const std::string& node, std::uint64_t rows) = 0;
  virtual void failed(const std::string& node, const error_info& e) = 0;
  /// Before the next node's result.
  void next_node() {
    started_ = false;
    command_.clear();
    affected_ = -1;
  }

protected:
  /// Whether this node printed anything yet.
  bool started_ = false;
  /// The command tag and affected rows, as the last chunk told them.
  std::string command_;
  std::int64_t affected_ = -1;
  void note(const result_set& rs) {
    if (!rs.command().empty()) {
      command_ = rs.command();
      affected_ = rs.affected_rows();
    }
  }
};

std::vector<text_row> text_rows(const result_set& rs) {
  std::vector<text_row> out;
  out.reserve(rs.size());
  for (auto row : rs) {
    text_row cells;
    for (std::size_t c = 0; c < rs.column_count(); ++c)
      cells.push_back(row.is_null(c) ? std::nullopt
                                     : std::optional<std::string>{std::string{row.text(c)}});
    out.push_back(std::move(cells));
  }
  return out;
}

/// psql-like tables; the column widths come from the first chunk.
class table_printer : public printer {
public:
  explicit table_printer(bool headers) : headers_(headers) {}

  void chunk(const std::string& node, const result_set& rs) override {
    note(rs);
    if (rs.column_count() == 0) return;
    if (!table_) {
      heading(node);
      std::vector<bool> right;
      for (std::size_t c = 0; c < rs.column_count(); ++c)
        right.push_back(is_numeric_type(rs.type_oid(c)));
      table_.emplace(rs.columns(), std::move(right));
      std::cout << table_->begin(text_rows(rs));
    } else {
      std::cout << table_->rows(text_rows(rs));
    }
    std::cout << std::flush;
  }

  void ok(const std::string& node, std::uint64_t rows) override {
    if (table_) {
      std::cout << table_stream::footer(rows);
    } else {
      heading(node);
      std::cout << (command_.empty() ? "OK" : command_) << '\n';
    }
    table_.reset();
    std::cout << std::flush;
  }

  void failed(const std::string& node, const error_info& e) override {
    bool mid_stream = table_.has_value();
    if (!started_ && headers_) {
      separate();
      std::cout << "[" << node << "] ";
      started_ = true;
    } else if (!started_) {
      separate();
      started_ = true;
    }
    (void)mid_stream;
    std::cout << describe_error(e) << '\n' << std::flush;
    table_.reset();
  }

private:
  void separate() {
    if (any_) std::cout << '\n';
    any_ = true;
  }
  void heading(const std::string& node) {
    if (started_) return;
    started_ = true;
    separate();
    if (headers_) std::cout << "[" << node << "]\n";
  }

  bool headers_;
  bool any_ = false;
  std::optional<table_stream> table_;
};

/// JSON lines: per node a columns object, one array per row, then an end
/// object with success (or the error).
class json_printer : public printer {
public:
  void chunk(const std::string& node, const result_set& rs) override {
    note(rs);
    if (rs.column_count() == 0) return;
    std::string out;
    if (!started_) {
      started_ = true;
      json_writer j;
      j.begin_object().key("node").value(node).key("columns").begin_array();
      for (std::size_t c = 0; c < rs.column_count(); ++c) {
        j.begin_object();
        j.key("name").value(rs.column_name(c));
        j.key("type_oid").value(static_cast<std::int64_t>(rs.type_oid(c)));
        j.end_object();
      }
      j.end_array().end_object();
      out += j.str();
      out += '\n';
    }
    // Integers and booleans as JSON numbers and booleans; everything else
    // (including numeric and floats, which JSON cannot always hold) as text.
    for (auto row : rs) {
      json_writer j;
      j.begin_array();
      for (std::size_t c = 0; c < rs.column_count(); ++c) {
        if (row.is_null(c)) {
          j.null();
          continue;
        }
        auto text = row.text(c);
        auto oid = rs.type_oid(c);
        if (oid == bool_oid && (text == "t" || text == "f"))
          j.value(text == "t");
        else if (is_integer_type(oid) && is_json_integer(text))
          j.raw(text);
        else
          j.value(text);
      }
      j.end_array();
      out += j.str();
      out += '\n';
    }
    std::cout << out << std::flush;
  }

  void ok(const std::string& node, std::uint64_t rows) override {
    json_writer j;
    j.begin_object().key("node").value(node).key("success").value(true);
    j.key("command").value(command_);
    j.key("affected_rows");
    if (affected_ >= 0)
      j.value(affected_);
    else
      j.null();
    j.key("rows").value(static_cast<std::int64_t>(rows));
    j.end_object();
    std::cout << j.str() << '\n' << std::flush;
  }

  void failed(const std::string& node, const error_info& e) override {
    json_writer j;
    j.begin_object().key("node").value(node).key("success").value(false);
    j.key("error").begin_object();
    j.key("code").value(to_string(e.code));
    j.key("message").value(e.message);
    j.key("sqlstate").value(e.sqlstate);
    j.end_object().end_object();
    std::cout << j.str() << '\n' << std::flush;
  }
};

/// One CSV field, quoted as RFC 4180 says when it has to be; NULL is an
/// empty unquoted field, an empty text a quoted one ("").
void append_csv(std::string& out, std::optional<std::string_view> text) {
  if (!text) return;
  if (!text->empty() && text->find_first_of(",\"\r\n") == std::string_view::npos) {
    out.append(*text);
    return;
  }
  out.push_back('"');
  for (char c : *text) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

/// CSV with a header row; with several nodes a first column "node" and one
/// header row in all (the first node's columns). Errors go to stderr.
class csv_printer : public printer {
public:
  explicit csv_printer(bool node_column) : node_column_(node_column) {}

  void chunk(const std::string& node, const result_set& rs) override {
    note(rs);
    if (rs.column_count() == 0) return;
    std::string out;
    if (!header_done_) {
      header_done_ = true;
      bool first = true;
      if (node_column_) {
        out += "node";
        first = false;
      }
      for (auto& name : rs.columns()) {
        if (!first) out.push_back(',');
        first = false;
        append_csv(out, name);
      }
      out += '\n';
    }
    for (auto row : rs) {
      bool first = true;
      if (node_column_) {
        append_csv(out, node);
        first = false;
      }
      for (std::size_t c = 0; c < rs.column_count(); ++c) {
        if (!first) out.push_back(',');
        first = false;
        append_csv(out,
                   row.is_null(c) ? std::nullopt : std::optional<std::string_view>{row.text(c)});
      }
      out += '\n';
    }
    std::cout << out << std::flush;
  }

  void ok(const std::string&, std::uint64_t) override {}

  void failed(const std::string& node, const error_info& e) override {
    std::cerr << "pgcm: " << node << ": " << describe_error(e) << '\n';
  }

private:
  bool node_column_;
  bool header_done_ = false;
};

/// Streams `sql` from `node` into `out`; false when it failed.
bool stream_node(connection_manager& mgr, printer& out, const std::string& node,
                 const cli_options& opts, const std::vector<param>& params) {
  out.next_node();
  stream_options so;
  so.timeout = opts.timeout;
  try {
    auto rows = mgr.query_stream(
        node, opts.sql, params, [&](const result_set& rs) { out.chunk(node, rs); }, so);
    out.ok(node, rows);
    return true;
  } catch (const error& e) {
    out.failed(node, e.info());
    return false;
  }
}

} // namespace

int run_query(const cli_options& opts) {
  setup_logging(opts, false);
  auto spec = load_cluster_spec(opts, process_env());
  for (auto& w : spec.warnings)
    std::cerr << "pgcm: warning: " << w << '\n';
  if (opts.target == query_target::node && !spec.remote) {
    bool known = false;
    std::string ids;
    for (auto& n : spec.nodes) {
      known = known || n.first == opts.target_node;
      ids += (ids.empty() ? "" : ", ") + n.first;
    }
    if (!known)
      throw usage_error{"--node " + opts.target_node + ": no such node (nodes: " + ids + ")"};
  }
  std::vector<param> params;
  for (auto& p : opts.params)
    params.push_back(p == "\\N" ? param{} : param{p});

  auto mgr = make_manager(spec);
  stop_hook on_stop{[&mgr] { mgr->shutdown(); }};
  start_manager(*mgr, spec);
  std::unique_ptr<printer> out;
  bool several = opts.target == query_target::all || opts.target == query_target::healthy;
  if (opts.json)
    out = std::make_unique<json_printer>();
  else if (opts.csv)
    out = std::make_unique<csv_printer>(several);
  else
    out = std::make_unique<table_printer>(opts.target != query_target::node); // routed: names it
  bool all_ok = true;
  switch (opts.target) {
  case query_target::node:
    all_ok = stream_node(*mgr, *out, opts.target_node, opts, params);
    break;
  case query_target::routed: {
    // A route picks its node per statement: this one result is read whole.
    out->next_node();
    try {
      auto rs = mgr->query(opts.routing, opts.sql, params, opts.timeout);
      auto node = rs.node_id();
      out->chunk(node, rs);
      out->ok(node, rs.size());
    } catch (const error& e) {
      out->failed("target " + to_string(opts.routing.to), e.info());
      all_ok = false;
    }
    break;
  }
  case query_target::all:
  case query_target::healthy: {
    // One node after the other, each streamed, in the order the nodes were added.
    auto nodes = opts.target == query_target::all ? mgr->get_nodes() : mgr->get_healthy_nodes();
    if (nodes.empty()) {
      std::cerr << "pgcm: no " << (opts.target == query_target::healthy ? "healthy " : "")
                << "node to query\n";
      return 1;
    }
    for (auto& n : nodes)
      all_ok = stream_node(*mgr, *out, n.id, opts, params) && all_ok;
    break;
  }
  }
  return all_ok ? 0 : 1;
}

} // namespace pgcm::cli
