/**
 * `npm run bench:proxy`: the proxy against a bare Node `http` pass-through,
 * measured in one run on the same upstream, and http-proxy-3 against the
 * original http-proxy while the latter is installed (a devDependency kept
 * for this comparison only).
 *
 * Every server runs in its own process (upstream, bare pass-through, one
 * proxy per library); autocannon drives them from this process with 50
 * keep-alive connections, in alternating rounds of a fixed duration, and
 * latencies are taken from autocannon's per-response timings (sub-ms, not
 * its 1 ms histogram). Each round runs every candidate twice: saturated
 * (requests/s, the ratio proxy/bare, goal >= 0.9) and paced at a fixed
 * rate with the same 50 connections (p50/p99 without queueing: the added
 * p99, goal < 1 ms). Saturated latency is mostly queueing, so its added
 * p99 is reported too but not judged. Prints ONE JSON object of medians.
 *
 *   npm run bench:proxy                       # 3 rounds x 10 s per candidate
 *   npm run bench:proxy -- --duration 5 --rounds 1 --connections 50 --rate 1000
 *
 * The proxy is measured doing real work, with its default options: route
 * matching, a canary at 50% sticky by the path's :id (10,000 distinct ids),
 * metrics, X-Request-Id, a response timer per request.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

type Role = 'upstream' | 'bare' | 'http-proxy-3' | 'http-proxy';
const SELF = fileURLToPath(import.meta.url);
/** Distinct sticky keys the load cycles through (an active customer base, or a region's hypervisors). */
const KEYS = 10_000;
const BODY = JSON.stringify({ droplet: { id: 3164444, name: 'example.com', memory: 1024, vcpus: 1, disk: 25, status: 'active', region: { slug: 'nyc1' } } });

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i === -1) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) {
    console.error(`--${name} must be a positive number`);
    process.exit(2);
  }
  return v;
}

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
  } else {
    const { createProxy } = await import('../proxy/create-proxy.ts');
    const { createStaticState } = await import('../proxy/static-state.ts');
    let engine;
    if (role === 'http-proxy') {
      const httpProxy = (await import('http-proxy')).default;
      engine = ((o: { xfwd: boolean; toProxy: boolean }) => httpProxy.createProxyServer({ xfwd: o.xfwd, toProxy: o.toProxy })) as never;
    }
    const proxy = createProxy({
      routes: { 'droplet-api': { legacy: [upstream], new: [upstream], routes: [{ method: 'GET', path: '/v2/droplets/:id', stickyBy: { param: 'id' } }] } },
      state: createStaticState({ 'droplet-api': { mode: 'canary', percent: 50 } }),
      ...(engine ? { engine } : {}),
    });
    ({ port } = await proxy.start());
  }
  process.send!({ port });
}

function start(role: Role, upstream = ''): Promise<{ child: ChildProcess; url: string }> {
  const child = fork(SELF, ['--role', role, '--upstream', upstream], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
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

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const connections = arg('connections', 50);
  const seconds = arg('duration', 10);
  const rounds = arg('rounds', 3);
  const rate = arg('rate', 1000);
  const loadAtStart = Math.round(os.loadavg()[0]! * 100) / 100;
  let haveHttpProxy = true;
  try {
    await import('http-proxy');
  } catch {
    haveHttpProxy = false;
  }
  const up = await start('upstream');
  const candidates: Array<{ name: Role; url: string; child: ChildProcess }> = [];
  for (const role of ['bare', 'http-proxy-3', ...(haveHttpProxy ? (['http-proxy'] as const) : [])] as Role[]) {
    candidates.push({ name: role, ...(await start(role, up.url)) });
  }
  const results = new Map<Role, Round[]>(candidates.map((c) => [c.name, []]));
  const paced = new Map<Role, Round[]>(candidates.map((c) => [c.name, []]));
  try {
    // Warm-up: JIT, keep-alive pools, agent sockets.
    for (const c of candidates) await load(c.url, connections, Math.min(2, seconds));
    for (let r = 0; r < rounds; r++) {
      // Alternate the order each round so no candidate always runs first (or hottest).
      const order = r % 2 === 0 ? candidates : [...candidates].reverse();
      for (const c of order) results.get(c.name)!.push(await load(c.url, connections, seconds));
      // The same connections at a fixed total rate well below saturation: latency without queueing.
      for (const c of order) paced.get(c.name)!.push(await pacedLoad(c.url, connections, seconds, rate));
    }
  } finally {
    for (const c of [...candidates, up]) c.child.kill('SIGTERM');
  }
  const summary = (name: Role) => {
    const rs = results.get(name)!;
    const ps = paced.get(name)!;
    return {
      rps: median(rs.map((r) => r.rps)),
      p50_ms: median(rs.map((r) => r.p50_ms)),
      p99_ms: median(rs.map((r) => r.p99_ms)),
      at_fixed_rate: { rate, rps: median(ps.map((r) => r.rps)), p50_ms: median(ps.map((r) => r.p50_ms)), p99_ms: median(ps.map((r) => r.p99_ms)) },
      errors: [...rs, ...ps].reduce((n, r) => n + r.errors + r.non2xx, 0),
      rounds: rs,
      fixed_rate_rounds: ps,
    };
  };
  const bare = summary('bare');
  const vsBare = (name: Role) => {
    const s = summary(name);
    const ratio = Math.round((s.rps / bare.rps) * 1000) / 1000;
    const addedP99 = Math.round((s.at_fixed_rate.p99_ms - bare.at_fixed_rate.p99_ms) * 1000) / 1000;
    const addedP99Saturated = Math.round((s.p99_ms - bare.p99_ms) * 1000) / 1000;
    return {
      library: name,
      ...s,
      ratio_vs_bare: ratio,
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
      warmup_s: Math.min(2, seconds),
      fixed_rate_rps: rate,
      phases: 'per round and candidate: saturated (as fast as 50 connections go) for rps and ratio, then paced at fixed_rate_rps for added p99 (latency without queueing)',
      load_generator: 'saturated: autocannon (this process), latencies from its per-response timer; paced: a loop of http.request over 50 keep-alive connections, each timed',
      upstream: `separate process, ${Buffer.byteLength(BODY)}-byte JSON, keep-alive`,
      proxy_work: `route match, canary 50% sticky by :id (${KEYS} distinct ids, cycling), request and upstream metrics, x-request-id, response timer`,
      node: process.version,
      cpus: os.cpus().length,
      statistic: 'median of rounds',
    },
    goals: { ratio_vs_bare_min: 0.9, added_p99_ms_max: 1 },
    // This machine may be shared: the 1-minute load average before and after the run says how much.
    machine_load_avg_1m: { start: loadAtStart, end: Math.round(os.loadavg()[0]! * 100) / 100 },
    bare,
    proxy: vsBare('http-proxy-3'),
    ...(haveHttpProxy ? { http_proxy_original: vsBare('http-proxy') } : {}),
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
