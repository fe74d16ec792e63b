/**
 * `npm run bench:proxy`: the proxy against a bare Node `http` pass-through,
 * measured in one run on the same upstream; the proxy on its default (pipe)
 * engine, on http-proxy-3, and on the original http-proxy while the latter
 * is installed (a devDependency kept for this comparison only).
 *
 * Every server runs in its own process (upstream, bare pass-through, one
 * proxy per engine), and so does the load generator: wrk when it is
 * installed (C, one thread: it leaves the 2 cores to the servers), else
 * autocannon in this process. 50 keep-alive connections, in rounds of a
 * fixed duration; each round runs every candidate in turn, the order
 * reversed every other round, the proxy right next to the bare pass-through
 * so each pair shares the machine's conditions. Each round runs every
 * candidate twice: saturated (requests/s; the ratio to the bare pass-through
 * in the same round, goal >= 0.9, reported as the median over rounds) and
 * paced at a fixed rate with the same 50 connections (p50/p99 without
 * queueing: the added p99, goal < 1 ms). Saturated latency is mostly
 * queueing, so its added p99 is reported too but not judged. CPU time per
 * request of each server process (and of the upstream) is read from
 * /proc during the saturated phase: on a shared machine it moves less than
 * requests/s do. Prints ONE JSON object of medians.
 *
 *   npm run bench:proxy                       # 5 rounds x 5 s per candidate and phase
 *   npm run bench:proxy -- --duration 5 --rounds 1 --connections 50 --rate 1000
 *   npm run bench:proxy -- --generator autocannon   # even where wrk is installed
 *   npm run bench:proxy -- --workers 2        # adds the proxy as a node:cluster of 2 workers
 *   npm run bench:proxy -- --nginx off        # without the nginx reference row (on by default where installed)
 *   npm run bench:proxy -- --cpu-prof DIR     # each Node server writes V8 CPU profiles into DIR/<role>/ at the end (one per thread)
 *
 * The proxy is measured doing real work, with its default options: route
 * matching, a canary at 50% sticky by the path's :id (10,000 distinct ids),
 * metrics, X-Request-Id, a response timer per request.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { numberArg as arg, textArg } from './args.ts';
import { childEnv } from '../lib/process/child-env.ts';
import { findNginx, nginxVersion, startNginx } from './nginx-reference.ts';
import { cpuUs, tree } from './proc-stats.ts';

type Role = 'upstream' | 'bare' | 'pipe' | 'http-proxy-3' | 'http-proxy' | 'cluster' | 'nginx';
const SELF = fileURLToPath(import.meta.url);
/** Distinct sticky keys the load cycles through (an active customer base, or a region's hypervisors). */
const KEYS = 10_000;
const STATES = { 'droplet-api': { mode: 'canary' as const, percent: 50 } };
const routesFor = (upstream: string) => ({
  'droplet-api': { legacy: [upstream], new: [upstream], routes: [{ method: 'GET', path: '/v2/droplets/:id', stickyBy: { param: 'id' } }] },
});
const BODY = JSON.stringify({ droplet: { id: 3164444, name: 'example.com', memory: 1024, vcpus: 1, disk: 25, status: 'active', region: { slug: 'nyc1' } } });

async function listen(server: ReturnType<typeof createServer>): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return (server.address() as AddressInfo).port;
}

/** A child process: one server, its port reported over IPC. */
async function serve(role: Role, upstream: string): Promise<void> {
  let port: number;
  if (role === 'upstream') {
    port = await listen(
      createServer((req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) });
        res.end(BODY);
      }),
    );
  } else if (role === 'bare') {
    // The baseline: http.request piping both ways over a keep-alive agent, nothing else.
    const target = new URL(upstream);
    const agent = new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256 });
    port = await listen(
      createServer((req, res) => {
        const up = request({ hostname: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent }, (ur) => {
          res.writeHead(ur.statusCode ?? 502, ur.headers);
          ur.pipe(res);
        });
        up.on('error', () => {
          if (!res.headersSent) res.writeHead(502);
          res.end();
        });
        req.pipe(up);
      }),
    );
  } else if (role === 'cluster') {
    const { createProxyCluster } = await import('../proxy/cluster.ts');
    const cluster = createProxyCluster({
      workers: Number(textArg('workers') ?? 2),
      routes: routesFor(upstream),
      stateFactory: { module: new URL('../proxy/static-state.ts', import.meta.url).href, export: 'createStaticState', options: STATES },
    });
    ({ port } = await cluster.start());
  } else {
    const { createProxy } = await import('../proxy/create-proxy.ts');
    const { createStaticState } = await import('../proxy/static-state.ts');
    const { httpProxy3Engine, httpProxyApi } = await import('../proxy/engine.ts');
    // 'pipe' is the proxy's default engine: no option.
    const engine = role === 'http-proxy-3' ? httpProxy3Engine : role === 'http-proxy' ? httpProxyApi((await import('http-proxy')).default.createProxyServer) : undefined;
    const proxy = createProxy({ routes: routesFor(upstream), state: createStaticState(STATES), ...(engine ? { engine } : {}) });
    ({ port } = await proxy.start());
  }
  // Profiled (--cpu-prof): V8 writes the profile on a clean exit only, which SIGTERM's default is not.
  if (process.execArgv.includes('--cpu-prof')) process.once('SIGTERM', () => process.exit(0));
  process.send!({ port });
}

function start(role: Role, upstream = '', extra: string[] = [], cpuProfDir?: string): Promise<{ child: ChildProcess; url: string }> {
  // A directory per role, not a file name: tsx's loader thread writes a profile too, under the same name.
  const prof = cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${path.join(cpuProfDir, role)}`] : [];
  const child = fork(SELF, ['--role', role, '--upstream', upstream, ...extra], { execArgv: ['--import', 'tsx', ...prof], env: childEnv({}), stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${role} exited with ${code} before listening`)));
    child.once('message', (m: { port: number }) => resolve({ child, url: `http://127.0.0.1:${m.port}` }));
  });
}

interface Round {
  rps: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  non2xx: number;
  /** CPU time (user + system) of the server's processes per request, in µs; the upstream's separately. */
  cpu_us_per_req?: number;
  upstream_cpu_us_per_req?: number;
  /** This round's rps over the bare pass-through's in the same round. */
  ratio_vs_bare?: number;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/**
 * `connections` keep-alive connections, each sending one request every
 * connections/rate seconds (staggered), timed one by one. autocannon's
 * overallRate sends each second's requests in a burst, which measures its
 * own queueing, so the paced phase uses this loop.
 */
async function pacedLoad(url: string, connections: number, seconds: number, rate: number): Promise<Round> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const latencies: number[] = [];
  let errors = 0;
  let non2xx = 0;
  let id = 0;
  const interval = (connections / rate) * 1000;
  const started = performance.now();
  const end = started + seconds * 1000;
  const one = (path: string) =>
    new Promise<number>((resolve, reject) => {
      const req = request(`${url}${path}`, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
  await Promise.all(
    Array.from({ length: connections }, async (_, c) => {
      let next = started + (c * interval) / connections;
      while (next < end) {
        const wait = next - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const t0 = performance.now();
        try {
          const status = await one(`/v2/droplets/${id++ % KEYS}`);
          if (status >= 200 && status < 300) latencies.push(performance.now() - t0);
          else non2xx++;
        } catch {
          errors++;
        }
        // Behind schedule (a slow answer): carry on from now rather than send a burst.
        next = Math.max(next + interval, performance.now());
      }
    }),
  );
  agent.destroy();
  const sorted = Float64Array.from(latencies).sort();
  const round = (v: number, d: number) => Math.round(v * 10 ** d) / 10 ** d;
  return {
    rps: round(latencies.length / seconds, 0),
    p50_ms: round(percentile(sorted, 50), 3),
    p99_ms: round(percentile(sorted, 99), 3),
    errors,
    non2xx,
  };
}

async function load(url: string, connections: number, seconds: number): Promise<Round> {
  let latencies = new Float64Array(1 << 20);
  let n = 0;
  let id = 0;
  let done: (r: autocannon.Result) => void = () => undefined;
  let failed: (e: Error) => void = () => undefined;
  const finished = new Promise<autocannon.Result>((resolve, reject) => {
    done = resolve;
    failed = reject;
  });
  const instance = autocannon(
    {
      url,
      connections,
      duration: seconds,
      pipelining: 1,
      requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: `/v2/droplets/${id++ % KEYS}` }) }],
    },
    (err, r) => (err ? failed(err) : done(r)),
  );
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    if (status < 200 || status >= 300) return;
    if (n === latencies.length) {
      const bigger = new Float64Array(latencies.length * 2);
      bigger.set(latencies);
      latencies = bigger;
    }
    latencies[n++] = ms;
  });
  const result = await finished;
  const sorted = latencies.subarray(0, n).sort();
  const round = (v: number, d: number) => Math.round(v * 10 ** d) / 10 ** d;
  return {
    rps: round(result.requests.total / (result.duration || seconds), 0),
    p50_ms: round(percentile(sorted, 50), 3),
    p99_ms: round(percentile(sorted, 99), 3),
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}

/** wrk's Lua side: the same cycling ids as autocannon's, and one JSON line of figures at the end. */
const WRK_SCRIPT = `
local i = 0
request = function()
  i = (i + 1) % ${KEYS}
  return wrk.format("GET", "/v2/droplets/" .. i)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\nWRK_JSON {"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50), latency:percentile(99)))
end
`;

function hasWrk(): boolean {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (err) {
    // wrk --version exits 1 after printing its version; only a missing binary is ENOENT.
    return (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

async function wrkLoad(script: string, url: string, connections: number, seconds: number): Promise<Round> {
  const child = spawn('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '-s', script, url], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const line = /WRK_JSON (\{.*\})/.exec(out);
  if (code !== 0 || !line) throw new Error(`wrk exited with ${code}: ${out.slice(-500)}`);
  const r = JSON.parse(line[1]!) as { requests: number; duration_us: number; errors: number; non2xx: number; p50_us: number; p99_us: number };
  return {
    rps: Math.round(r.requests / (r.duration_us / 1e6)),
    p50_ms: r.p50_us / 1000,
    p99_ms: r.p99_us / 1000,
    errors: r.errors,
    non2xx: r.non2xx,
  };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const connections = arg('connections', 50);
  const seconds = arg('duration', 5);
  const rounds = arg('rounds', 5);
  // Profiling slows the servers it samples: a profiled run's figures say where the time goes, not how much.
  const cpuProfDir = textArg('cpu-prof');
  const rate = arg('rate', 1000);
  const workers = textArg('workers') === undefined ? 0 : arg('workers', 2);
  const generatorArg = textArg('generator');
  if (generatorArg !== undefined && generatorArg !== 'wrk' && generatorArg !== 'autocannon') {
    console.error('--generator must be wrk or autocannon');
    process.exit(2);
  }
  const generator = generatorArg ?? (hasWrk() ? 'wrk' : 'autocannon');
  if (generator === 'wrk' && !hasWrk()) {
    console.error('--generator wrk: wrk is not installed (apt-get install wrk), or leave the option out to use autocannon');
    process.exit(2);
  }
  const loadAtStart = Math.round(os.loadavg()[0]! * 100) / 100;
  let haveHttpProxy = true;
  try {
    await import('http-proxy');
  } catch {
    haveHttpProxy = false;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-proxy-'));
  const script = path.join(dir, 'load.lua');
  writeFileSync(script, WRK_SCRIPT);
  const saturate = (url: string, s: number) => (generator === 'wrk' ? wrkLoad(script, url, connections, s) : load(url, connections, s));

  const up = await start('upstream', '', [], cpuProfDir);
  // The default proxy runs right after the bare pass-through (and right before it in reversed rounds).
  // nginx (C), when installed: what a proxy costs that is not Node at all, on the same upstream in the same rounds.
  const nginxBin = textArg('nginx') === 'off' ? undefined : findNginx();
  const roles: Role[] = [
    'bare',
    'pipe',
    'http-proxy-3',
    ...(haveHttpProxy ? (['http-proxy'] as const) : []),
    ...(nginxBin ? (['nginx'] as const) : []),
    ...(workers ? (['cluster'] as const) : []),
  ];
  const candidates: Array<{ name: Role; url: string; child: ChildProcess }> = [];
  for (const role of roles) {
    if (role === 'nginx') candidates.push({ name: role, ...(await startNginx({ bin: nginxBin!, upstream: up.url, dir })) });
    else candidates.push({ name: role, ...(await start(role, up.url, role === 'cluster' ? ['--workers', String(workers)] : [], cpuProfDir)) });
  }
  const results = new Map<Role, Round[]>(candidates.map((c) => [c.name, []]));
  const paced = new Map<Role, Round[]>(candidates.map((c) => [c.name, []]));
  try {
    // Warm-up: JIT, keep-alive pools, agent sockets, the sticky-decision cache (every id once).
    for (const c of candidates) await saturate(c.url, Math.min(3, seconds));
    for (let r = 0; r < rounds; r++) {
      // Alternate the order each round so no candidate always runs first (or hottest).
      const order = r % 2 === 0 ? candidates : [...candidates].reverse();
      for (const c of order) {
        const pids = tree(c.child.pid!);
        const before = [cpuUs(pids), cpuUs([up.child.pid!])];
        const round = await saturate(c.url, seconds);
        const after = [cpuUs(pids), cpuUs([up.child.pid!])];
        const requests = round.rps * seconds;
        if (before[0] !== undefined && after[0] !== undefined && requests > 0) {
          round.cpu_us_per_req = Math.round((after[0] - before[0]) / requests);
          round.upstream_cpu_us_per_req = Math.round((after[1]! - before[1]!) / requests);
        }
        results.get(c.name)!.push(round);
      }
      const bareRps = results.get('bare')![r]!.rps;
      for (const c of candidates) results.get(c.name)![r]!.ratio_vs_bare = Math.round((results.get(c.name)![r]!.rps / bareRps) * 1000) / 1000;
      // The same connections at a fixed total rate well below saturation: latency without queueing.
      for (const c of order) paced.get(c.name)!.push(await pacedLoad(c.url, connections, seconds, rate));
    }
  } finally {
    const exited = [...candidates, up].map((c) => (c.child.exitCode !== null ? undefined : new Promise<void>((r) => c.child.once('exit', () => r()))));
    for (const c of [...candidates, up]) c.child.kill('SIGTERM');
    // A profile is written as its process exits: wait for them before saying the run is over.
    if (cpuProfDir) await Promise.all(exited);
    rmSync(dir, { recursive: true, force: true });
  }
  const cpu = (rs: Round[], key: 'cpu_us_per_req' | 'upstream_cpu_us_per_req') => {
    const v = rs.map((r) => r[key]).filter((x): x is number => x !== undefined);
    return v.length ? median(v) : null;
  };
  const summary = (name: Role) => {
    const rs = results.get(name)!;
    const ps = paced.get(name)!;
    return {
      rps: median(rs.map((r) => r.rps)),
      p50_ms: median(rs.map((r) => r.p50_ms)),
      p99_ms: median(rs.map((r) => r.p99_ms)),
      cpu_us_per_req: cpu(rs, 'cpu_us_per_req'),
      upstream_cpu_us_per_req: cpu(rs, 'upstream_cpu_us_per_req'),
      at_fixed_rate: { rate, rps: median(ps.map((r) => r.rps)), p50_ms: median(ps.map((r) => r.p50_ms)), p99_ms: median(ps.map((r) => r.p99_ms)) },
      errors: [...rs, ...ps].reduce((n, r) => n + r.errors + r.non2xx, 0),
      rounds: rs,
      fixed_rate_rounds: ps,
    };
  };
  const bare = summary('bare');
  const vsBare = (name: Role, engine: string) => {
    const s = summary(name);
    const ratio = median(results.get(name)!.map((r) => r.ratio_vs_bare!));
    const addedP99 = Math.round((s.at_fixed_rate.p99_ms - bare.at_fixed_rate.p99_ms) * 1000) / 1000;
    const addedP99Saturated = Math.round((s.p99_ms - bare.p99_ms) * 1000) / 1000;
    return {
      engine,
      ...s,
      ratio_vs_bare: ratio,
      cpu_ratio_vs_bare: s.cpu_us_per_req && bare.cpu_us_per_req ? Math.round((s.cpu_us_per_req / bare.cpu_us_per_req) * 100) / 100 : null,
      added_p99_ms: addedP99,
      added_p99_ms_saturated: addedP99Saturated,
      meets_goals: ratio >= 0.9 && addedP99 < 1,
    };
  };
  const out = {
    bench: 'proxy',
    settings: {
      connections,
      duration_s: seconds,
      rounds,
      pipelining: 1,
      warmup_s: Math.min(3, seconds),
      fixed_rate_rps: rate,
      phases: 'per round and candidate: saturated (as fast as 50 connections go) for rps and ratio, then paced at fixed_rate_rps for added p99 (latency without queueing)',
      load_generator:
        generator === 'wrk'
          ? 'saturated: wrk -t1 (its own process), latencies from its µs histogram; paced: a loop of http.request over 50 keep-alive connections, each timed'
          : 'saturated: autocannon (this process), latencies from its per-response timer; paced: a loop of http.request over 50 keep-alive connections, each timed',
      generator,
      upstream: `separate process, ${Buffer.byteLength(BODY)}-byte JSON, keep-alive`,
      proxy_work: `route match, canary 50% sticky by :id (${KEYS} distinct ids, cycling), request and upstream metrics, x-request-id, response timer`,
      node: process.version,
      cpus: os.cpus().length,
      statistic: 'ratio_vs_bare: median over rounds of (rps / the bare rps of the same round); other figures: median of rounds; cpu_us_per_req from /proc (user + system) during the saturated phase',
    },
    goals: { ratio_vs_bare_min: 0.9, added_p99_ms_max: 1 },
    // This machine may be shared: the 1-minute load average before and after the run says how much.
    machine_load_avg_1m: { start: loadAtStart, end: Math.round(os.loadavg()[0]! * 100) / 100 },
    bare,
    proxy: vsBare('pipe', 'pipe (default: http.request over keep-alive agents, proxy/pipe-engine.ts)'),
    proxy_on_http_proxy_3: vsBare('http-proxy-3', 'http-proxy-3'),
    ...(haveHttpProxy ? { proxy_on_http_proxy: vsBare('http-proxy', 'http-proxy (original)') } : {}),
    // A reference, not a candidate: the goals apply to the Node proxy only.
    ...(nginxBin ? { nginx_reference: vsBare('nginx', `${nginxVersion(nginxBin)}: 1 worker process, proxy_pass with upstream keepalive 64, access_log off`) } : {}),
    ...(workers ? { proxy_cluster: { workers, ...vsBare('cluster', `pipe, node:cluster of ${workers} workers (not like for like: more than one process)`) } } : {}),
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}

const roleIndex = process.argv.indexOf('--role');
if (roleIndex !== -1) {
  const upIndex = process.argv.indexOf('--upstream');
  serve(process.argv[roleIndex + 1] as Role, process.argv[upIndex + 1] ?? '').catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
