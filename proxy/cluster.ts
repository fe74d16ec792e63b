import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import { StranglerError, invalidOption } from '../lib/errors.ts';
import { freePort } from '../lib/net/free-port.ts';
import { silentLogger, type Logger } from '../lib/logger.ts';
import type { FromWorker, StateFactoryRef, ToWorker, WorkerProxyOptions } from './cluster-protocol.ts';
import { createProxy } from './create-proxy.ts';
import { SampleRing, type ShadowSample } from './shadow.ts';
import { childEnv } from '../lib/process/child-env.ts';

export type { StateFactoryRef } from './cluster-protocol.ts';

/** Sockets one process may hold (the machine's per-process open-file limit, with room for files and pools). */
export const SOCKET_BUDGET = 20_000;

/**
 * Workers needed to relay `streams` long-lived streams: each holds two
 * sockets (client and upstream), and every worker keeps 10% of the budget
 * for ordinary requests, health checks and its own files.
 *
 * @example workersForStreams(15_000) // 2: 7,500 streams = 15,000 sockets per worker
 */
export function workersForStreams(streams: number, budget = SOCKET_BUDGET): number {
  return Math.max(1, Math.ceil((2 * streams) / Math.floor(budget * 0.9)));
}

export interface ProxyClusterOptions extends WorkerProxyOptions {
  /** Worker processes; each is a full proxy on the shared port. See workersForStreams(). */
  workers: number;
  /** Loaded by every worker to build its own feature-state reader (see StateFactoryRef). */
  stateFactory: StateFactoryRef;
  /** The primary's logger; workers log JSON to stderr at `workerLogLevel`. */
  logger?: Logger;
  workerLogLevel?: string;
  /** Wait before replacing a dead worker; doubles (up to 5 s) while workers keep dying young. */
  restartDelayMs?: number;
  /** How long start() waits for a worker to listen. */
  startTimeoutMs?: number;
}

export interface ClusterWorkerInfo {
  id: number;
  pid: number;
  listening: boolean;
}

export interface ProxyCluster {
  start(): Promise<{ port: number; url: string }>;
  /** Stops every worker (each drains like a proxy's close) and stops replacing them; idempotent. */
  close(): Promise<void>;
  workers(): ClusterWorkerInfo[];
  /** Workers replaced after dying since start. */
  restarts(): number;
  /** Shadow samples from every worker, oldest first. */
  shadowSamples(): ShadowSample[];
  /** Serves the primary's own metrics plus every worker's proxy_* metrics, aggregated (pass it to createProxyAdmin). */
  readonly registry: Registry;
}

const WORKER_PATH = fileURLToPath(new URL('./cluster-worker.ts', import.meta.url));

/** Aggregates the workers' registries into the primary's /metrics. */
class ClusterRegistry extends AggregatorRegistry<'text/plain; version=0.0.4; charset=utf-8'> {
  override async metrics(): Promise<string> {
    const own = await super.metrics();
    let workers = '';
    try {
      workers = await this.clusterMetrics();
    } catch {
      // A worker died mid-request; the next scrape will have it.
    }
    return `${own}\n${workers}`;
  }
}

/**
 * Runs the proxy in several processes sharing one port (node:cluster), so
 * that no process holds more than its socket budget: 15,000 SSE streams are
 * 30,000 sockets, over the 20,000 a process may hold; two workers hold
 * 15,000 each. A worker that dies is replaced; the others keep serving.
 * One proxy cluster per process (node:cluster's settings are process-wide).
 *
 * @example
 *   const proxies = createProxyCluster({
 *     workers: workersForStreams(15_000),
 *     routes,
 *     port: 8000,
 *     stateFactory: { module: new URL('../proxy/cutover/reader.ts', import.meta.url).href, export: 'createReader', options: { mysqlUrl } },
 *   });
 *   await proxies.start();
 */
export function createProxyCluster(options: ProxyClusterOptions): ProxyCluster {
  if (typeof options !== 'object' || options === null) throw invalidOption('options', options, 'an object');
  if (!cluster.isPrimary) throw new StranglerError('PROXY_ERR_INTERNAL', 'createProxyCluster must be called in the primary process, not in a cluster worker');
  const { workers: count, stateFactory, logger, workerLogLevel, restartDelayMs = 100, startTimeoutMs = 30_000, ...proxyOptions } = options;
  if (!Number.isInteger(count) || count < 1 || count > 64) throw invalidOption('workers', count, 'an integer from 1 to 64');
  if (typeof stateFactory !== 'object' || stateFactory === null || typeof stateFactory.module !== 'string') {
    throw invalidOption(
      'stateFactory',
      typeof stateFactory === 'function' ? '[function]' : stateFactory,
      '{ module, export?, options? }: a module each worker imports (a function cannot cross into worker processes)',
    );
  }
  let moduleUrl: string;
  if (stateFactory.module.startsWith('file:')) moduleUrl = stateFactory.module;
  else if (stateFactory.module.startsWith('/')) moduleUrl = pathToFileURL(stateFactory.module).href;
  else throw invalidOption('stateFactory.module', stateFactory.module, 'an absolute path or a file: URL');
  if (stateFactory.export !== undefined && typeof stateFactory.export !== 'string') throw invalidOption('stateFactory.export', stateFactory.export, 'an export name');
  if (!Number.isInteger(restartDelayMs) || restartDelayMs < 0 || restartDelayMs > 60_000) throw invalidOption('restartDelayMs', restartDelayMs, 'an integer from 0 to 60000');
  if (!Number.isInteger(startTimeoutMs) || startTimeoutMs < 1000) throw invalidOption('startTimeoutMs', startTimeoutMs, 'an integer of at least 1000');
  try {
    JSON.stringify(proxyOptions);
  } catch (cause) {
    throw invalidOption('options', '[not JSON]', `plain JSON to send to the workers (${(cause as Error).message})`);
  }
  // Every other option is checked the way each worker will check it: here, before any process starts.
  createProxy({ ...proxyOptions, state: { get: () => undefined }, registry: new Registry() });

  const log = (logger ?? silentLogger()).child({ component: 'proxy-cluster' });
  const level = workerLogLevel ?? process.env.LOG_LEVEL ?? 'warn';
  const host = proxyOptions.host ?? '127.0.0.1';
  const registry = new ClusterRegistry();
  const samples = new SampleRing(proxyOptions.shadow?.samples ?? 50);
  const live = new Map<Worker, { listening: boolean; startedAt: number }>();
  let restartCount = 0;
  let backoff = restartDelayMs;
  let closing: Promise<void> | undefined;
  let port = 0;

  new Gauge({
    name: 'proxy_cluster_workers',
    help: 'Proxy worker processes listening on the shared port.',
    registers: [registry],
    collect() {
      this.set([...live.values()].filter((w) => w.listening).length);
    },
  });
  const restartsMetric = new Counter({ name: 'proxy_cluster_worker_restarts_total', help: 'Proxy workers replaced after dying.', registers: [registry] });

  function fork(): { worker: Worker; listening: Promise<void> } {
    cluster.setupPrimary({ exec: WORKER_PATH, execArgv: ['--import', 'tsx'], args: [], silent: false });
    // Its settings come over IPC (proxy:config): the environment carries nothing of the operator's.
    const worker = cluster.fork(childEnv({}));
    // A message to a worker that is dying fails with EPIPE as an 'error' event; unhandled, it ends the primary.
    worker.on('error', (err) => log.warn({ pid: worker.process.pid, err: err.message }, 'proxy worker IPC error'));
    live.set(worker, { listening: false, startedAt: Date.now() });
    const listening = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new StranglerError('PROXY_ERR_INTERNAL', `proxy worker ${worker.process.pid} did not listen within ${startTimeoutMs} ms`)), startTimeoutMs);
      worker.on('message', (msg: FromWorker) => {
        if (msg?.type === 'proxy:hello') {
          const config: ToWorker = { type: 'proxy:config', options: { ...proxyOptions, port, host }, stateFactory: { ...stateFactory, module: moduleUrl }, logLevel: level };
          worker.send(config);
        } else if (msg?.type === 'proxy:listening') {
          clearTimeout(timer);
          const w = live.get(worker);
          if (w) w.listening = true;
          log.info({ id: worker.id, pid: worker.process.pid, port: msg.port }, 'proxy worker listening');
          resolve();
        } else if (msg?.type === 'proxy:failed') {
          clearTimeout(timer);
          reject(new StranglerError('PROXY_ERR_INTERNAL', `proxy worker ${worker.process.pid} failed to start: ${msg.message}`));
        } else if (msg?.type === 'proxy:sample') {
          samples.push(msg.sample);
        }
      });
      worker.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new StranglerError('PROXY_ERR_INTERNAL', `proxy worker ${worker.process.pid} exited (${signal ?? code}) before listening`));
      });
    });
    // Unhandled until start() awaits it; a replacement's failure is handled by its exit.
    listening.catch(() => undefined);
    worker.once('exit', (code, signal) => onExit(worker, code, signal));
    return { worker, listening };
  }

  function onExit(worker: Worker, code: number | null, signal: string | null): void {
    const info = live.get(worker);
    live.delete(worker);
    if (closing || !info) return;
    const young = Date.now() - info.startedAt < 5000;
    backoff = young ? Math.min(Math.max(backoff * 2, restartDelayMs, 50), 5000) : restartDelayMs;
    log.warn({ id: worker.id, pid: worker.process.pid, code, signal, restartInMs: backoff }, 'proxy worker died; replacing it');
    setTimeout(() => {
      if (closing) return;
      restartCount++;
      restartsMetric.inc();
      fork().listening.catch((err: Error) => log.error({ err: err.message }, 'replacement proxy worker failed to start'));
    }, backoff).unref();
  }

  async function stopAll(): Promise<void> {
    await Promise.all(
      [...live.keys()].map(
        (worker) =>
          new Promise<void>((resolve) => {
            if (worker.isDead()) return resolve();
            const timer = setTimeout(() => worker.process.kill('SIGKILL'), (proxyOptions.drainTimeoutMs ?? 10_000) + 5000);
            worker.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            if (worker.isConnected()) worker.send({ type: 'proxy:stop' } satisfies ToWorker);
            else worker.process.kill('SIGTERM');
          }),
      ),
    );
  }

  return {
    registry,
    async start() {
      if (closing) throw new StranglerError('PROXY_ERR_INTERNAL', 'this proxy cluster was closed; create a new one');
      // Every worker, replacements included, listens on the same concrete port: with port 0 a
      // replacement started after all workers died would get a different one.
      port = proxyOptions.port && proxyOptions.port > 0 ? proxyOptions.port : await freePort(host);
      try {
        await Promise.all(Array.from({ length: count }, () => fork().listening));
      } catch (err) {
        closing = stopAll();
        await closing;
        throw err;
      }
      const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
      log.info({ url, workers: count }, 'proxy cluster listening');
      return { port, url };
    },
    close() {
      closing ??= stopAll();
      return closing;
    },
    workers() {
      return [...live.entries()].map(([w, info]) => ({ id: w.id, pid: w.process.pid ?? 0, listening: info.listening }));
    },
    restarts: () => restartCount,
    shadowSamples: () => samples.list(),
  };
}
