import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Counter, Gauge, Registry } from 'prom-client';
import type { DbConfig } from '../../lib/db/config.ts';
import { StranglerError, invalidOption } from '../../lib/errors.ts';
import { silentLogger, type Logger } from '../../lib/logger.ts';
import { createAgentStats, type AgentStats } from './agent-stats.ts';
import type { FromWorker, ToWorker } from './fleet-protocol.ts';

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
}

const WORKER_PATH = fileURLToPath(new URL('./fleet-worker.ts', import.meta.url));

/**
 * Runs one legacy DOBE agent per hypervisor, spread over worker processes,
 * each agent polling MySQL with the god query over its own connection.
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
  const counters = {
    godQueries: new Counter({ name: 'dobe_god_queries_total', help: 'God queries run by legacy agents.', registers: [registry] }),
    eventsExecuted: new Counter({ name: 'dobe_events_executed_total', help: 'Events executed by legacy agents.', registers: [registry] }),
    claimsLost: new Counter({
      name: 'dobe_event_claims_lost_total',
      help: 'Events an agent found but could not claim because they were already taken.',
      registers: [registry],
    }),
    errors: new Counter({ name: 'dobe_poll_errors_total', help: 'Failed polls (the agent reconnects).', registers: [registry] }),
  };

  function onMessage(worker: WorkerState, msg: FromWorker): void {
    if (msg.type === 'progress') {
      worker.connected = msg.connected;
      options.onProgress?.(
        workers.reduce((n, w) => n + w.connected, 0),
        options.serverIds.length,
      );
    } else if (msg.type === 'stats') {
      for (const key of ['godQueries', 'eventsExecuted', 'claimsLost', 'errors'] as const) {
        const delta = msg.stats[key] - worker.stats[key];
        if (delta > 0) counters[key].inc(delta);
      }
      worker.stats = msg.stats;
      worker.rssBytes = msg.rssBytes;
      worker.peakRssBytes = Math.max(worker.peakRssBytes, msg.rssBytes);
    }
  }

  function startWorker(serverIds: number[]): Promise<WorkerState> {
    const child = fork(WORKER_PATH, [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env },
    });
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
    async start() {
      const ids = options.serverIds;
      const processes = Math.ceil(ids.length / perProcess);
      // Even slices: 15,000 over 4 processes is 3,750 each, not 4,000+4,000+4,000+3,000.
      const size = Math.ceil(ids.length / processes);
      const slices = Array.from({ length: processes }, (_, i) => ids.slice(i * size, (i + 1) * size)).filter((s) => s.length);
      log.info({ agents: ids.length, processes: slices.length }, 'starting the legacy fleet');
      try {
        await Promise.all(slices.map(startWorker));
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
