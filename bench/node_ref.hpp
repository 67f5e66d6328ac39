#pragma once

// The node-postgres reference: bench/node_pg_ref.js in one Node.js process
// per workload, driven over its stdin/stdout window by window.

#include <string>
#include <vector>

#include "common.hpp"

namespace bench {

/// Where node, the `pg` package and node_pg_ref.js are; `reason` says why
/// the contender cannot run when `available` is false. Looked up once.
struct node_pg_status {
  bool available = false;
  std::string reason;
  std::string node;       // the node executable
  std::string script;     // node_pg_ref.js
  std::string node_path;  // NODE_PATH for require('pg'); may be empty
  std::string pg_version; // of the `pg` package found
};
const node_pg_status& find_node_pg();

/// node-postgres `pg.Pool({max: pool_max})`: `loops` concurrent async loops
/// in one Node.js process doing `pool.query(sql)` (simple query protocol) on
/// servers[0] (`fanout` false), or `Promise.all` of `pool.query(sql)` over
/// one pool per server (`fanout` true). cpu/op and csw/op of its rows are the
/// Node.js process's (process.resourceUsage()) plus the bench process's.
contender_ptr make_node_pg(const cluster_info& c, std::vector<server> servers, std::string sql,
                           int loops, int pool_max, bool fanout);

} // namespace bench
