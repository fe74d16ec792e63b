import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { RowDataPacket } from 'mysql2/promise';
import { Counter, Gauge, Registry } from 'prom-client';
import { mintHypervisorToken } from '../lib/auth/hypervisor-token.ts';
import type { DbConfig } from '../lib/db/config.ts';
import { openConnection } from '../lib/db/connection.ts';
import { StranglerError, invalidOption } from '../lib/errors.ts';
import { silentLogger, type Logger } from '../lib/logger.ts';
import { createAgentStats, type AgentStats } from './agent-stats.ts';
import type { FromWorker, ToWorker, WorkerRouterOptions } from './fleet-protocol.ts';
import type { PollingModeRef } from './polling-mode.ts';
import { createHostMetricsBoard, type HostMetricsBoard } from './host-metrics.ts';
import { childEnv } from '../lib/process/child-env.ts';
import type { HypervisorKeyRing } from '../lib/auth/hypervisor-keys.ts';

/**
 * Agents per process. Each holds one MySQL socket; 4,000 keeps a worker far
 * below the 20,000 open-file limit and its mysql2 memory near 100 MB.
 */
export const DEFAULT_AGENTS_PER_PROCESS = 4000;

export interface FleetOptions {
  /** The `dobe` MySQL user's settings. */
  db: DbConfig;
  /** Hypervisors (servers.id) to simulate, one agent each. */
  serverIds: number[];
  agentsPerProcess?: number;
  pollIntervalMs?: { min: number; max: number };
  workMs?: number;
  hostReportIntervalMs?: number;
  /** Concurrent connection handshakes per worker while starting. */
  connectConcurrency?: number;
  logger?: Logger;
  registry?: Registry;
  /** Called as agents connect, for progress output. */
  onProgress?: (connected: number, total: number) => void;
  /**
   * The legacy event source, by module path (GOD_QUERY_MODE from
   * legacy/dobe/god-query-mode.ts): each worker imports it. Without it the
   * agents take their events from their routers only (routerUrl required).
   */
  pollingMode?: PollingModeRef;
  /**
   * The agents' routers: one base URL for all regions (the proxy) or one per
   * region slug (each region's router). With `pollingMode` too every agent is
   * dual-mode (its event source follows the `event-delivery` cutover state).
   */
  routerUrl?: string | Record<string, string>;
  /** The hypervisor key ring the agents' tokens are minted with (standing in for provisioning); required with routerUrl. */
  hypervisorKeys?: HypervisorKeyRing;
  /** God-query polls between reads of the cutover row (default 3). */
  modeCheckEvery?: number;
  routerRetryMs?: { min: number; max: number };
  routerFallbackAfterMs?: number;
}

interface WorkerState {
  child: ChildProcess;
  serverIds: number[];
  connected: number;
  stats: AgentStats;
  rssBytes: number;
  peakRssBytes: number;
}

export interface FleetProcessReport {
  pid: number;
  agents: number;
  peakRssBytes: number;
}

export interface Fleet {
  start(): Promise<void>;
  close(): Promise<void>;
  /** Counters summed over every worker (as of their last report, about once a second). */
  stats(): AgentStats;
  processes(): FleetProcessReport[];
  readonly registry: Registry;
  /** Every hypervisor's own measurements, by region (serve with addHostMetricsRoutes). */
  readonly hostMetrics: HostMetricsBoard;
}

const WORKER_PATH = fileURLToPath(new URL('./fleet-worker.ts', import.meta.url));

/**
 * Runs one DOBE agent per hypervisor, spread over worker processes, each
 * agent polling MySQL with the god query over its own connection. With
 * `routerUrl` the agents are dual-mode: each follows the `event-delivery`
 * cutover state and, when routed, holds one SSE stream to its region's
 * Event Router instead of a MySQL connection (`dobe_agents_by_source`).
 *
 * @example
 *   const fleet = createFleet({ db: dobeConfig, serverIds: [1, 2, 3] });
 *   await fleet.start(); … await fleet.close();
 */
export function createFleet(options: FleetOptions): Fleet {
  const perProcess = options.agentsPerProcess ?? DEFAULT_AGENTS_PER_PROCESS;
  if (!Number.isInteger(perProcess) || perProcess < 1 || perProcess > 15_000) {
    throw invalidOption('agentsPerProcess', perProcess, 'an integer from 1 to 15000 (a process may hold at most 20,000 sockets)');
  }
  if (options.serverIds.length === 0) throw invalidOption('serverIds', options.serverIds, 'a non-empty list of server ids');
  const log = (options.logger ?? silentLogger()).child({ component: 'fleet' });
  const registry = options.registry ?? new Registry();
  const workers: WorkerState[] = [];
  const hostMetrics = createHostMetricsBoard();
  let closing: Promise<void> | undefined;

  const connected = new Gauge({
    name: 'dobe_agents_connected',
    help: 'Legacy DOBE agents holding an open MySQL connection.',
    registers: [registry],
    collect() {
      this.set(workers.reduce((n, w) => n + w.stats.connected, 0));
    },
  });
  void connected;
  const bySource = new Gauge({
    name: 'dobe_agents_by_source',
    help: 'DOBE agents by where their events come from: the god query over their own MySQL connection, or their region\'s Event Router.',
    labelNames: ['source'],
    registers: [registry],
    collect() {
      this.set({ source: 'god-query' }, workers.reduce((n, w) => n + w.stats.onGodQuery, 0));
      this.set({ source: 'router' }, workers.reduce((n, w) => n + w.stats.onRouter, 0));
    },
  });
  void bySource;
  const streams = new Gauge({
    name: 'dobe_router_streams',
    help: 'Open event streams from DOBE agents to Event Routers.',
    registers: [registry],
    collect() {
      this.set(workers.reduce((n, w) => n + w.stats.routerStreams, 0));
    },
  });
  void streams;
  const counters = {
    godQueries: new Counter({ name: 'dobe_god_queries_total', help: 'God queries run by legacy agents.', registers: [registry] }),
    eventsExecuted: new Counter({ name: 'dobe_events_executed_total', help: 'Events executed by legacy agents.', registers: [registry] }),
    claimsLost: new Counter({
      name: 'dobe_event_claims_lost_total',
      help: 'Events an agent found but could not claim because they were already taken.',
      registers: [registry],
    }),
    errors: new Counter({ name: 'dobe_poll_errors_total', help: 'Failed polls (the agent reconnects).', registers: [registry] }),
    switches: new Counter({ name: 'dobe_source_switches_total', help: 'Event-source switches between the god query and the router.', registers: [registry] }),
  };
  if (options.routerUrl === undefined && !options.pollingMode) {
    throw invalidOption('routerUrl', options.routerUrl, 'router URLs (or a polling mode in `pollingMode`, for a legacy fleet)');
  }
  if (options.routerUrl !== undefined && !options.hypervisorKeys) throw invalidOption('hypervisorKeys', '[redacted]', 'the hypervisor key ring (required with routerUrl)');

  /** Region and token per server, read once here (one query) so workers need not ask. */
  async function routerOptions(): Promise<{ regions: Map<number, string>; urls: Record<string, string> } | undefined> {
    if (options.routerUrl === undefined) return undefined;
    const conn = await openConnection(options.db);
    let regions: Map<number, string>;
    try {
      const [rows] = await conn.query<RowDataPacket[]>('SELECT s.id, r.slug FROM servers s JOIN regions r ON r.id = s.region_id WHERE s.id IN (?)', [options.serverIds]);
      regions = new Map(rows.map((r) => [Number(r.id), String(r.slug)]));
    } finally {
      await conn.end().catch(() => conn.destroy());
    }
    const urls = typeof options.routerUrl === 'string' ? { '*': options.routerUrl } : options.routerUrl;
    for (const id of options.serverIds) {
      const region = regions.get(id);
      if (region === undefined) throw invalidOption('serverIds', id, 'ids of existing servers');
      if (!urls[region] && !urls['*']) throw invalidOption('routerUrl', Object.keys(urls), `a router URL for region ${region}`);
    }
    return { regions, urls };
  }

  function workerRouter(serverIds: number[], r: { regions: Map<number, string>; urls: Record<string, string> }): WorkerRouterOptions {
    const regions = serverIds.map((id) => r.regions.get(id)!);
    return {
      urls: r.urls,
      regions,
      tokens: serverIds.map((id, i) => mintHypervisorToken(options.hypervisorKeys!, id, regions[i]!)),
      modeCheckEvery: options.modeCheckEvery,
      retryMs: options.routerRetryMs,
      fallbackAfterMs: options.routerFallbackAfterMs,
    };
  }

  function onMessage(worker: WorkerState, msg: FromWorker): void {
    if (msg.type === 'progress') {
      worker.connected = msg.connected;
      options.onProgress?.(
        workers.reduce((n, w) => n + w.connected, 0),
        options.serverIds.length,
      );
    } else if (msg.type === 'stats') {
      for (const key of ['godQueries', 'eventsExecuted', 'claimsLost', 'errors', 'switches'] as const) {
        const delta = msg.stats[key] - worker.stats[key];
        if (delta > 0) counters[key].inc(delta);
      }
      worker.stats = msg.stats;
      worker.rssBytes = msg.rssBytes;
      worker.peakRssBytes = Math.max(worker.peakRssBytes, msg.rssBytes);
    } else if (msg.type === 'profiles') {
      hostMetrics.setProfiles(msg.profiles);
    } else if (msg.type === 'hosts') {
      hostMetrics.applyTick(msg.atMs, msg.values);
    }
  }

  function startWorker(serverIds: number[], router: WorkerRouterOptions | undefined): Promise<WorkerState> {
    const child = fork(WORKER_PATH, [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // Credentials come over IPC: the environment carries nothing of the operator's.
      env: childEnv({}),
    });
    // A message to a worker that is dying (chaos kills them) fails with EPIPE as an 'error' event; unhandled, it ends
    // this process. Its exit is what counts, and is handled below.
    child.on('error', (err) => log.warn({ pid: child.pid, err: err.message }, 'fleet worker IPC error'));
    const worker: WorkerState = { child, serverIds, connected: 0, stats: createAgentStats(), rssBytes: 0, peakRssBytes: 0 };
    workers.push(worker);
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new StranglerError('FLEET_ERR_WORKER_EXIT', `fleet worker exited with code ${code} while starting`));
      child.once('exit', onExit);
      child.on('message', (msg: FromWorker) => {
        onMessage(worker, msg);
        if (msg.type === 'started') {
          child.removeListener('exit', onExit);
          worker.connected = msg.agents;
          log.info({ pid: child.pid, agents: msg.agents, connectMs: msg.connectMs }, 'fleet worker started');
          resolve(worker);
        } else if (msg.type === 'failed') {
          reject(new StranglerError('FLEET_ERR_START', `a fleet worker could not start its agents: ${msg.message}`));
        }
      });
      const start: ToWorker = {
        type: 'start',
        serverIds,
        db: options.db,
        pollIntervalMs: options.pollIntervalMs ?? { min: 1000, max: 5000 },
        workMs: options.workMs ?? 20,
        hostReportIntervalMs: options.hostReportIntervalMs ?? 30_000,
        connectConcurrency: options.connectConcurrency ?? 64,
        ...(router ? { router } : {}),
        ...(options.pollingMode ? { pollingMode: options.pollingMode } : {}),
      };
      child.send(start);
    });
  }

  async function stopWorker(worker: WorkerState): Promise<void> {
    const { child } = worker;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    if (child.connected) child.send({ type: 'stop' } satisfies ToWorker);
    else child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  }

  return {
    registry,
    hostMetrics,
    async start() {
      const ids = options.serverIds;
      const processes = Math.ceil(ids.length / perProcess);
      // Even slices: 15,000 over 4 processes is 3,750 each, not 4,000+4,000+4,000+3,000.
      const size = Math.ceil(ids.length / processes);
      const slices = Array.from({ length: processes }, (_, i) => ids.slice(i * size, (i + 1) * size)).filter((s) => s.length);
      log.info({ agents: ids.length, processes: slices.length }, 'starting the legacy fleet');
      try {
        const router = await routerOptions();
        await Promise.all(slices.map((slice) => startWorker(slice, router && workerRouter(slice, router))));
        for (const w of workers) w.child.send({ type: 'run' } satisfies ToWorker);
      } catch (err) {
        await Promise.all(workers.map(stopWorker));
        throw err;
      }
    },
    close() {
      closing ??= Promise.all(workers.map(stopWorker)).then(() => undefined);
      return closing;
    },
    stats() {
      const total = createAgentStats();
      for (const w of workers) for (const key of Object.keys(total) as Array<keyof AgentStats>) total[key] += w.stats[key];
      return total;
    },
    processes() {
      return workers.map((w) => ({ pid: w.child.pid ?? 0, agents: w.serverIds.length, peakRssBytes: w.peakRssBytes }));
    },
  };
}
