import { readFile, writeFile } from 'node:fs/promises';
import { dirname, relative, resolve } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { prepareDatabase, dropDatabase, uniqueDatabaseName } from '../../lib/db/database.ts';
import { createKnex } from '../../lib/db/knex.ts';
import { provisionServer } from '../../lib/db/provision.ts';
import { serviceDbConfig } from '../../lib/db/service-users.ts';
import { loadStackSecrets } from '../../lib/secrets/stack-secrets.ts';
import { createCloud } from '../../cloud/create-cloud.ts';
import { generateSeed } from '../../stack/seed/generate.ts';
import { insertSeed } from '../../stack/seed/insert.ts';
import { startTraffic } from '../../demo/traffic.ts';
import { createProgress } from '../../demo/progress.ts';
import { createProxy } from '../../proxy/create-proxy.ts';
import { dropletApiRoutes } from '../../proxy/droplet-api.ts';
import { createStaticState } from '../../proxy/static-state.ts';
import { mixKey, readCapture, CaptureFormatError } from '../../proxy/capture/format.ts';
import { k6Script } from '../../proxy/capture/k6-script.ts';
import { createCaptureRecorder } from '../../proxy/capture/recorder.ts';
import { secretAlias, type TokenSource } from '../../proxy/capture/redact.ts';
import { replayCapture, type Pacing } from '../../proxy/capture/replay.ts';
import { cliLogger } from '../cli-logger.ts';
import { StranglerError } from '../../lib/errors.ts';
import { loadProxyConfigFile } from '../../proxy/config.ts';
import type { RouteTable } from '../../proxy/route-table.ts';
import { EXIT, UsageError, intOption, parseCommandArgs, waitForStop, writeJson, type Command, reportInvalidFile, type CommandIO } from '../command.ts';
import { directEvents } from '../../legacy/cloud/direct-events.ts';

const HELP = `Usage: strangler replay <record|run|k6> [options]

Captures of real traffic, replayed before each cutover step. A capture is
JSON Lines: one line per request (method, path, headers, body, arrival
offset, status), with every credential redacted to [REDACTED:<alias>] before
it reaches the disk (the alias is a hash prefix: the same token, the same
alias). Replays put real tokens back: --token for all, or --token-map FILE,
a JSON object {"<alias>": "<token>", "*": "<default>"}.

  strangler replay record --target URL --out FILE [--port P] [--sample R] [--seconds S]
      A recording proxy for the droplet API in front of URL; send traffic to
      the URL it prints. Ctrl-C (or --seconds) stops it.
  strangler replay record --config PROXY.json --out FILE [--port P] [--sample R] [--seconds S]
      The same for any service: a recording proxy with the config's routes,
      every feature to its legacy targets.
  strangler replay record --demo --out FILE [--seconds S] [--rate N] [--hypervisors N]
      Records the demo's customer traffic (a throwaway database, Cloud
      behind a recording proxy); writes FILE and FILE's token map (demo
      tokens only) next to it as <FILE>.tokens.json.
  strangler replay run CAPTURE --target URL (--rate 2x | --rps N) [--token T | --token-map FILE]
      [--concurrency N] [--timeout-ms MS] [--loops N]
      Replays with the capture's mix; --rate scales its own pacing (2x is
      twice as fast), --rps sends at a fixed rate. Progress on stderr; a JSON
      summary (sent, failed, status counts, latency p50/p99) with --json.
  strangler replay k6 CAPTURE [--out FILE] [--rate 2x | --rps N] [--target URL]
      Writes a k6 script that replays the capture (see k6/README.md).

Options:
  --sample R        Share of requests recorded, 0 < R <= 1 (default 1)
  --json            Machine-readable output
  -h, --help        This text

Exit codes: 0 ok, 1 failed (replay: any request failed), 2 bad usage, 3 no database (record --demo).

Examples:
  strangler replay record --demo --seconds 20 --out out/capture.jsonl
  strangler replay run out/capture.jsonl --target http://127.0.0.1:9405 --rate 2x --token-map out/capture.jsonl.tokens.json
  strangler replay k6 out/capture.jsonl --out out/replay.js --rps 50
`;

function pacingOf(rate: string | undefined, rps: string | undefined, fallback: Pacing | undefined): Pacing {
  if (rate !== undefined && rps !== undefined) throw new UsageError('give --rate or --rps, not both');
  if (rps !== undefined) {
    const n = Number(rps);
    if (!Number.isFinite(n) || n <= 0 || n > 100_000) throw new UsageError(`--rps must be a number from 0 to 100000, got "${rps}"`);
    return { rps: n };
  }
  if (rate !== undefined) {
    const m = /^(\d+(?:\.\d+)?)x?$/.exec(rate);
    const n = m ? Number(m[1]) : NaN;
    if (!(n > 0) || n > 1000) throw new UsageError(`--rate must be a multiplier such as 2x or 0.5x, got "${rate}"`);
    return { rate: n };
  }
  if (fallback) return fallback;
  throw new UsageError('give --rate (e.g. 1x, 2x) or --rps N');
}

async function tokensOf(token: string | undefined, mapFile: string | undefined): Promise<TokenSource> {
  const source: TokenSource = {};
  if (token !== undefined) source.fallback = token;
  if (mapFile !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(mapFile, 'utf8'));
    } catch (err) {
      throw new UsageError(`--token-map ${mapFile}: ${(err as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || !Object.values(parsed).every((v) => typeof v === 'string')) {
      throw new UsageError(`--token-map ${mapFile}: must be a JSON object of "<alias>": "<token>"`);
    }
    source.byAlias = parsed as Record<string, string>;
  }
  return source;
}

async function loadCapture(file: string | undefined) {
  if (!file) throw new UsageError('name the capture file');
  try {
    const capture = await readCapture(file);
    if (capture.entries.length === 0) throw new UsageError(`${file} holds no requests`);
    return capture;
  } catch (err) {
    if (err instanceof CaptureFormatError) throw new UsageError(`${file}: ${err.message}`);
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new UsageError(`${file}: no such file`);
    throw err;
  }
}

async function run(argv: string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, {
    target: { type: 'string' },
    rate: { type: 'string' },
    rps: { type: 'string' },
    token: { type: 'string' },
    'token-map': { type: 'string' },
    concurrency: { type: 'string' },
    'timeout-ms': { type: 'string' },
    loops: { type: 'string' },
  });
  if (values.help) return help(io);
  if (!values.target) throw new UsageError('--target URL is required (the proxy or service to replay against)');
  if (!/^https?:\/\/[^/]/.test(values.target)) throw new UsageError(`--target must be an http:// URL, got "${values.target}"`);
  const pacing = pacingOf(values.rate, values.rps, undefined);
  const capture = await loadCapture(positionals[0]);
  const tokens = await tokensOf(values.token, values['token-map']);
  const progress = createProgress(io.stderr as NodeJS.WritableStream & { isTTY?: boolean }, { quiet: values.json });
  progress.log(`replaying ${capture.entries.length} requests from ${positionals[0]} at ${'rps' in pacing ? `${pacing.rps}/s` : `${pacing.rate}x`} against ${values.target}`);
  const summary = await replayCapture(capture.entries, {
    target: values.target,
    pacing,
    tokens,
    concurrency: intOption('concurrency', values.concurrency, 256, 1),
    timeoutMs: intOption('timeout-ms', values['timeout-ms'], 10_000, 1),
    loops: intOption('loops', values.loops, 1, 1),
    signal: io.signal,
    onProgress: (p) => progress.update(`${p.done}/${p.total} answered · ${p.failed} failed · ${p.elapsedS}s`),
  });
  if (values.json) writeJson(io, summary);
  else {
    progress.log('done');
    io.stdout.write(
      [
        `sent ${summary.sent} in ${summary.duration_s}s (${summary.achieved_rps}/s) · failed ${summary.failed} · latency p50 ${summary.latency_ms.p50} ms, p99 ${summary.latency_ms.p99} ms`,
        `status: ${Object.entries(summary.status).map(([k, v]) => `${k} ${v}`).join(', ')}`,
        ...(summary.missing_tokens ? [`${summary.missing_tokens} requests had redacted credentials and no --token/--token-map entry: sent without them`] : []),
        '',
      ].join('\n'),
    );
  }
  return summary.failed === 0 ? EXIT.ok : EXIT.failed;
}

async function k6(argv: string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { out: { type: 'string' }, rate: { type: 'string' }, rps: { type: 'string' }, target: { type: 'string' } });
  if (values.help) return help(io);
  const file = positionals[0];
  const capture = await loadCapture(file);
  const pacing = pacingOf(values.rate, values.rps, { rate: 1 });
  const out = values.out ?? 'replay.k6.js';
  // k6's open() resolves relative to the script.
  let capturePath = relative(dirname(resolve(out)), resolve(file!));
  if (!capturePath.startsWith('.') && !capturePath.startsWith('/')) capturePath = `./${capturePath}`;
  const script = k6Script({ capturePath, entries: capture.entries, pacing, target: values.target ?? 'http://127.0.0.1:9405', generatedBy: `Generated by strangler replay k6 ${file}` });
  await mkdir(dirname(resolve(out)), { recursive: true });
  await writeFile(out, script);
  const mix: Record<string, number> = {};
  for (const e of capture.entries) mix[mixKey(e)] = (mix[mixKey(e)] ?? 0) + 1;
  const info = { script: out, capture: file, requests: capture.entries.length, pacing, mix, run: `k6 run -e TOKEN=<token> ${out}` };
  if (values.json) writeJson(io, info);
  else io.stdout.write(`wrote ${out} (${capture.entries.length} requests); run it with: ${info.run}\n`);
  return EXIT.ok;
}

async function record(argv: string[], io: CommandIO): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    target: { type: 'string' },
    config: { type: 'string' },
    demo: { type: 'boolean' },
    out: { type: 'string' },
    port: { type: 'string' },
    sample: { type: 'string' },
    seconds: { type: 'string' },
    rate: { type: 'string' },
    hypervisors: { type: 'string' },
  });
  if (values.help) return help(io);
  if (!values.out) throw new UsageError('--out FILE is required (the capture to write)');
  if ([values.demo, values.target, values.config].filter(Boolean).length !== 1) {
    throw new UsageError('give one of --target URL (a droplet-API recording proxy), --config FILE (a recording proxy with that proxy config\'s routes, to legacy) or --demo');
  }
  let routes: RouteTable = {};
  if (values.config) {
    try {
      routes = loadProxyConfigFile(values.config).features;
    } catch (err) {
      if (err instanceof StranglerError && err.code === 'PROXY_ERR_INVALID_CONFIG') return reportInvalidFile(io, Boolean(values.json), 'proxy config', values.config, err);
      throw err;
    }
  }
  const sampleRate = values.sample === undefined ? 1 : Number(values.sample);
  if (!(sampleRate > 0 && sampleRate <= 1)) throw new UsageError(`--sample must be a number in (0, 1], got "${values.sample}"`);
  const progress = createProgress(io.stderr as NodeJS.WritableStream & { isTTY?: boolean }, { quiet: values.json });
  const logger = cliLogger(io.env);
  await mkdir(dirname(resolve(values.out)), { recursive: true });
  const recorder = createCaptureRecorder({ file: values.out, sampleRate, source: values.demo ? 'strangler replay record --demo' : values.config ? `strangler replay record --config ${values.config}` : `strangler replay record --target ${values.target}` });
  const started: Array<() => Promise<unknown>> = [() => recorder.close()];
  const stopAll = async () => {
    for (const stop of started.reverse()) await stop();
  };
  try {
    if (values.target || values.config) {
      if (values.target && !/^https?:\/\/[^/]/.test(values.target)) throw new UsageError(`--target must be an http:// URL, got "${values.target}"`);
      const seconds = values.seconds === undefined ? undefined : intOption('seconds', values.seconds, 1, 1);
      if (values.target) routes = { 'droplet-api': dropletApiRoutes([values.target]) };
      // Every feature at legacy (no state): the capture is what the legacy side answers today.
      const proxy = createProxy({ routes, state: createStaticState(), logger, port: intOption('port', values.port, 9405, 0, 65535), onExchange: recorder.record });
      const { url } = await proxy.start();
      started.push(() => proxy.close());
      const to = values.target ?? `the legacy targets of ${values.config}`;
      if (values.json) io.stdout.write(JSON.stringify({ recording: url, target: to, out: values.out }) + '\n');
      else io.stdout.write(`recording proxy: ${url} → ${to}; writing ${values.out}. Ctrl-C stops.\n`);
      await waitForStop(io.signal, seconds, () => {
        const s = recorder.stats();
        progress.update(`${s.recorded} recorded · ${s.skipped} not sampled · ${s.dropped} dropped`);
      });
    } else {
      await recordDemo(values, io, progress, logger, recorder.record, started);
    }
  } finally {
    await stopAll();
  }
  const stats = recorder.stats();
  if (values.json) writeJson(io, stats);
  else io.stdout.write(`recorded ${stats.recorded} requests to ${stats.file} (${stats.skipped} not sampled, ${stats.dropped} dropped)\n`);
  return EXIT.ok;
}

async function recordDemo(
  values: { seconds?: string; rate?: string; hypervisors?: string; out?: string },
  io: CommandIO,
  progress: ReturnType<typeof createProgress>,
  logger: ReturnType<typeof cliLogger>,
  onExchange: Parameters<typeof createProxy>[0]['onExchange'],
  started: Array<() => Promise<unknown>>,
): Promise<void> {
  const seconds = intOption('seconds', values.seconds, 20, 1);
  const rate = intOption('rate', values.rate, 10, 1);
  const hypervisors = intOption('hypervisors', values.hypervisors, 50, 1);
  const secret = loadStackSecrets(io.env).secrets.db;
  const server = await provisionServer({ env: io.env, logger, needConnections: 50 });
  started.push(() => server.release());
  const database = uniqueDatabaseName('strangler_capture');
  const admin = await prepareDatabase(server.admin, database, secret);
  started.push(() => dropDatabase(server.admin, database));
  const seed = generateSeed({ hypervisors, regions: 3, seed: 1 });
  const db = createKnex(admin, { poolMax: 2 });
  try {
    await insertSeed(db, seed);
  } finally {
    await db.destroy();
  }
  const cloud = createCloud({ db: serviceDbConfig(server.admin, database, 'cloud', secret), directEvents, logger, port: 0 });
  const cloudUrl = (await cloud.start()).url;
  started.push(() => cloud.close());
  const proxy = createProxy({ routes: { 'droplet-api': dropletApiRoutes([cloudUrl]) }, state: createStaticState(), logger, port: 0, onExchange });
  const proxyUrl = (await proxy.start()).url;
  started.push(() => proxy.close());
  const customers = seed.customers.map((c) => ({ id: c.id, token: seed.tokens.get(c.id)! }));
  progress.log(`recording ${seconds}s of demo traffic (${rate} requests/s) through ${proxyUrl}`);
  const traffic = startTraffic({
    cloudUrl: proxyUrl,
    customers,
    droplets: seed.droplets.map((d) => ({ id: d.id, customer_id: d.customer_id })),
    regions: seed.regions.map((r) => r.slug),
    sizes: seed.sizes.slice(0, 4).map((s) => s.slug),
    images: seed.images.map((i) => i.slug),
    rate,
    mix: { create: 0.4, action: 0.2, destroy: 0.05 },
  });
  // Reads as well as writes: a customer's dashboard polls its droplets and actions.
  const reads = setInterval(() => {
    const c = customers[Math.floor(Math.random() * customers.length)]!;
    void fetch(`${proxyUrl}/v2/droplets?per_page=20`, { headers: { authorization: `Bearer ${c.token}` } }).then((r) => r.arrayBuffer(), () => {});
  }, Math.max(20, Math.round(2000 / rate)));
  await waitForStop(io.signal, seconds, () => progress.update(`${traffic.stats().sent} requests sent`));
  clearInterval(reads);
  await traffic.stop();
  // The demo's tokens are derived from the seed number, so writing them is harmless; never do this with real ones.
  const map = Object.fromEntries(customers.map((c) => [secretAlias(c.token), c.token]));
  await writeFile(`${values.out}.tokens.json`, JSON.stringify(map, null, 2) + '\n');
  progress.log(`token map for the demo's customers: ${values.out}.tokens.json`);
}

function help(io: CommandIO): number {
  io.stdout.write(HELP);
  return EXIT.ok;
}

export const command: Command = {
  name: 'replay',
  summary: 'record traffic through the proxy, replay it (--rate 2x | --rps N), or write a k6 script',
  help: HELP,
  async run(argv, io) {
    const [verb, ...rest] = argv;
    if (verb === 'record') return record(rest, io);
    if (verb === 'run') return run(rest, io);
    if (verb === 'k6') return k6(rest, io);
    if (verb === '--help' || verb === '-h') return help(io);
    if (verb === undefined) {
      io.stderr.write(HELP);
      return EXIT.usage;
    }
    throw new UsageError(`unknown verb "${verb}"; use record, run or k6`);
  },
};
