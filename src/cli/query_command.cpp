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

void print_text(const std::vector<node_result_set>& results, bool headers) {
  bool first = true;
  for (auto& r : results) {
    if (!first) std::cout << '\n';
    first = false;
    if (!r.success) {
      std::cout << (headers ? "[" + r.node_id + "] " : std::string{})
                << describe_error(r.error.value_or(error_info{})) << '\n';
      continue;
    }
    if (headers) std::cout << "[" << r.node_id << "]\n";
    const auto& rs = r.data;
    if (rs.column_count() == 0) {
      std::cout << (rs.command().empty() ? "OK" : rs.command()) << '\n';
      continue;
    }
    text_table t;
    t.headers = rs.columns();
    for (std::size_t c = 0; c < rs.column_count(); ++c)
      t.right_align.push_back(is_numeric_type(rs.type_oid(c)));
    for (auto row : rs) {
      std::vector<std::optional<std::string>> cells;
      for (std::size_t c = 0; c < rs.column_count(); ++c)
        cells.push_back(row.is_null(c) ? std::nullopt
                                       : std::optional<std::string>{std::string{row.text(c)}});
      t.rows.push_back(std::move(cells));
    }
    std::cout << render(t);
  }
}

void print_json(const std::vector<node_result_set>& results) {
  json_writer j;
  bool ok = true;
  j.begin_object().key("results").begin_array();
  for (auto& r : results) {
    j.begin_object();
    j.key("node").value(r.node_id);
    j.key("success").value(r.success);
    if (!r.success) {
      ok = false;
      auto e = r.error.value_or(error_info{});
      j.key("error").begin_object();
      j.key("code").value(to_string(e.code));
      j.key("message").value(e.message);
      j.key("sqlstate").value(e.sqlstate);
      j.end_object();
      j.end_object();
      continue;
    }
    const auto& rs = r.data;
    j.key("command").value(rs.command());
    j.key("affected_rows");
    if (rs.affected_rows() >= 0)
      j.value(rs.affected_rows());
    else
      j.null();
    j.key("columns").begin_array();
    for (std::size_t c = 0; c < rs.column_count(); ++c) {
      j.begin_object();
      j.key("name").value(rs.column_name(c));
      j.key("type_oid").value(static_cast<std::int64_t>(rs.type_oid(c)));
      j.end_object();
    }
    j.end_array();
    // Integers and booleans as JSON numbers and booleans; everything else
    // (including numeric and floats, which JSON cannot always hold) as text.
    j.key("rows").begin_array();
    for (auto row : rs) {
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
    }
    j.end_array();
    j.end_object();
  }
  j.end_array();
  j.key("ok").value(ok && !results.empty());
  j.end_object();
  std::cout << j.str() << '\n';
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
  std::vector<node_result_set> results;
  switch (opts.target) {
  case query_target::node: {
    node_result_set r;
    r.node_id = opts.target_node;
    try {
      r.data = mgr->query(opts.target_node, opts.sql, params, opts.timeout);
      r.success = true;
    } catch (const error& e) {
      r.error = e.info();
    }
    results.push_back(std::move(r));
    break;
  }
  case query_target::routed: {
    node_result_set r;
    try {
      r.data = mgr->query(opts.routing, opts.sql, params, opts.timeout);
      r.node_id = r.data.node_id();
      r.success = true;
    } catch (const error& e) {
      r.node_id = "target " + to_string(opts.routing.to);
      r.error = e.info();
    }
    results.push_back(std::move(r));
    break;
  }
  case query_target::all:
    results = mgr->query_all(opts.sql, params, opts.timeout);
    break;
  case query_target::healthy:
    results = mgr->query_healthy(opts.sql, params, opts.timeout);
    break;
  }
  if (opts.json)
    print_json(results);
  else
    print_text(results, opts.target != query_target::node); // routed: names the node
  if (results.empty()) {
    std::cerr << "pgcm: no " << (opts.target == query_target::healthy ? "healthy " : "")
              << "node to query\n";
    return 1;
  }
  for (auto& r : results)
    if (!r.success) return 1;
  return 0;
}

} // namespace pgcm::cli
