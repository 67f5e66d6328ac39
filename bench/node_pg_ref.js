'use strict';
// node_pg_ref.js: the node-postgres reference of pgcm_bench (bench/README.md).
//
// Started once per workload by pgcm_bench (bench/node_ref.cpp) and driven over
// stdin/stdout, one line per command, so that it runs in the same alternating
// rounds as the other contenders:
//   run <seconds>   run one measurement window, answer with three lines:
//                     result <ops> <errors> <seconds> <cpu_ns> <ctxsw>
//                     lat <ns> <ns> ...        (one latency per op)
//                     err <first error message, or nothing>
//   quit            end the pools and exit
// On start it runs one query per pool, then the workload for
// PGCM_NODE_REF_WARMUP seconds (default 2: the pools grow to max and V8
// compiles the hot path, as a long-running service would have it), and
// prints `ready`, or `fail <message>` and exits 1.
//
// Workload (environment, set by pgcm_bench; the password never goes on the
// command line):
//   PGCM_NODE_REF_MODE         select1: pool.query(SQL) on the first port;
//                              fanout: Promise.all of pool.query(SQL) over
//                              one pg.Pool per port
//   PGCM_NODE_REF_SQL          the statement (plain pool.query(text): the
//                              simple query protocol, not prepared)
//   PGCM_NODE_REF_LOOPS        concurrent async loops (one Node.js process)
//   PGCM_NODE_REF_POOL_MAX     pg.Pool max per pool
//   PGCM_NODE_REF_HOST, PGCM_NODE_REF_PORTS (comma-separated),
//   PGCM_NODE_REF_USER, PGCM_NODE_REF_PASSWORD, PGCM_NODE_REF_DB,
//   PGCM_NODE_REF_SSL          1: ssl {rejectUnauthorized: false}; else none
// The `pg` package is found through NODE_PATH (scripts/bench installs it
// under the build directory).

const pg = require('pg');
const readline = require('readline');

const env = (k, dflt) => {
  const v = process.env[k];
  if (v === undefined || v === '') {
    if (dflt !== undefined) return dflt;
    process.stdout.write(`fail ${k} is not set\n`);
    process.exit(1);
  }
  return v;
};

const mode = env('PGCM_NODE_REF_MODE');
const sql = env('PGCM_NODE_REF_SQL');
const loops = parseInt(env('PGCM_NODE_REF_LOOPS'), 10);
const poolMax = parseInt(env('PGCM_NODE_REF_POOL_MAX'), 10);
const ports = env('PGCM_NODE_REF_PORTS').split(',').map((p) => parseInt(p, 10));
const base = {
  host: env('PGCM_NODE_REF_HOST'),
  user: env('PGCM_NODE_REF_USER'),
  password: env('PGCM_NODE_REF_PASSWORD', ''),
  database: env('PGCM_NODE_REF_DB'),
  application_name: 'pgcm-bench-node-pg',
  max: poolMax,
};
if (env('PGCM_NODE_REF_SSL', '0') === '1') base.ssl = { rejectUnauthorized: false };
if (mode !== 'select1' && mode !== 'fanout') {
  process.stdout.write(`fail PGCM_NODE_REF_MODE must be select1 or fanout, not ${mode}\n`);
  process.exit(1);
}
if (!(loops > 0) || !(poolMax > 0) || ports.some((p) => !(p > 0))) {
  process.stdout.write('fail PGCM_NODE_REF_LOOPS, _POOL_MAX and _PORTS must be positive numbers\n');
  process.exit(1);
}

const pools = (mode === 'select1' ? ports.slice(0, 1) : ports).map(
  (port) => new pg.Pool({ ...base, port }),
);
// An idle client's error (server gone) must not crash the process; the next
// query on that pool reports it.
for (const p of pools) p.on('error', () => {});

const op = mode === 'select1' ? () => pools[0].query(sql) : () => Promise.all(pools.map((p) => p.query(sql)));

function oneLine(s) {
  return String(s).replace(/\s+/g, ' ').slice(0, 300);
}

async function runWindow(seconds, report = true) {
  const lat = [];
  let ops = 0;
  let errors = 0;
  let firstError = '';
  let stop = false;
  const u0 = process.resourceUsage();
  const t0 = process.hrtime.bigint();
  let t1 = t0;
  const timer = new Promise((resolve) =>
    setTimeout(() => {
      stop = true;
      t1 = process.hrtime.bigint();
      resolve();
    }, Math.max(1, Math.round(seconds * 1000))),
  );
  const loop = async () => {
    while (!stop) {
      const s = process.hrtime.bigint();
      let ok = true;
      try {
        await op();
      } catch (e) {
        ok = false;
        if (!stop) {
          ++errors;
          if (!firstError) firstError = oneLine(e && e.message ? e.message : e);
        }
      }
      if (stop) break;
      if (ok) {
        ++ops;
        lat.push(Number(process.hrtime.bigint() - s));
      }
    }
  };
  const running = [];
  for (let i = 0; i < loops; ++i) running.push(loop());
  await timer;
  await Promise.all(running);
  const u1 = process.resourceUsage();
  const cpuNs = (u1.userCPUTime - u0.userCPUTime + u1.systemCPUTime - u0.systemCPUTime) * 1000;
  const csw =
    u1.voluntaryContextSwitches -
    u0.voluntaryContextSwitches +
    u1.involuntaryContextSwitches -
    u0.involuntaryContextSwitches;
  const secs = Number(t1 - t0) / 1e9;
  if (!report) return { ops, errors, firstError };
  process.stdout.write(
    `result ${ops} ${errors} ${secs} ${cpuNs} ${csw}\nlat ${lat.join(' ')}\nerr ${firstError}\n`,
  );
}

async function main() {
  try {
    await Promise.all(pools.map((p) => p.query(sql)));
    const warmup = parseFloat(env('PGCM_NODE_REF_WARMUP', '2'));
    if (warmup > 0) {
      const w = await runWindow(warmup, false);
      if (w.errors > 0) throw new Error(w.firstError);
    }
  } catch (e) {
    process.stdout.write(`fail ${oneLine(e && e.message ? e.message : e)}\n`);
    process.exit(1);
  }
  process.stdout.write('ready\n');
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  let busy = Promise.resolve();
  let quitting = false;
  const quit = () => {
    if (quitting) return;
    quitting = true;
    busy
      .then(() => Promise.all(pools.map((p) => p.end())))
      .finally(() => process.exit(0));
  };
  rl.on('line', (line) => {
    const [cmd, arg] = line.trim().split(/\s+/);
    if (cmd === 'run') {
      const secs = parseFloat(arg);
      busy = busy.then(() => runWindow(secs > 0 ? secs : 1));
    } else if (cmd === 'quit') {
      quit();
    } else if (cmd) {
      process.stdout.write(`fail unknown command ${oneLine(cmd)}\n`);
    }
  });
  rl.on('close', quit); // the harness went away
}

main();
