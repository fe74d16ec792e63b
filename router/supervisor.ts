import type { DbConfig } from '../lib/db/config.ts';
import { invalidOption } from '../lib/errors.ts';
import { silentLogger, type Logger } from '../lib/logger.ts';
import { freePort } from '../lib/net/free-port.ts';
import { spawnRouterProcess, type RouterProcess } from './process.ts';

export interface RouterSupervisorOptions {
  /** Region slugs: one router process each. */
  regions: readonly string[];
  /** The `event_router` MySQL user on the run's database. */
  db: DbConfig;
  /** Secret the hypervisor tokens derive from. */
  secret: string;
  pollIntervalMs?: number;
  poolSize?: number;
  host?: string;
  logger?: Logger;
  /** Wait before restarting a router that died (default 200 ms; doubles, up to 5 s, while it keeps dying). */
  restartDelayMs?: number;
  /** Grace for SIGTERM at close before SIGKILL (default 10 s). */
  stopTimeoutMs?: number;
}

export interface SupervisedRouter {
  region: string;
  url: string;
  /** The current process's pid, 0 while it is being restarted. */
  pid: number;
  up: boolean;
}

export interface RouterSupervisor {
  /** Starts every region's router and resolves once each answers /readyz. */
  start(): Promise<SupervisedRouter[]>;
  /** Stops every router (SIGTERM, they drain) and stops restarting them; idempotent. */
  close(): Promise<void>;
  routers(): SupervisedRouter[];
  /** Routers restarted after dying since start. */
  restarts(): number;
  /** Sends `signal` to a region's router process (chaos runs, tests); false if none is running. */
  kill(region: string, signal?: NodeJS.Signals): boolean;
  /** The running router processes, for reports (peak memory is read from /proc by pid). */
  processes(): Array<{ region: string; pid: number }>;
}

interface Slot {
  region: string;
  port: number;
  url: string;
  current?: RouterProcess;
  backoff: number;
}

/**
 * One Event Router process per region, each on a fixed port, restarted on
 * the same port when it dies: agents reconnect to the same URL and the new
 * process redelivers whatever the dead one had claimed (router/README.md).
 * Routers are processes, not objects in the caller, so that a kill -9 of
 * one takes nothing else down and no process holds every agent's socket.
 *
 * @example
 *   const routers = createRouterSupervisor({ regions: ['nyc1', 'sfo1'], db: routerDb, secret });
 *   const list = await routers.start();   // [{ region: 'nyc1', url: 'http://127.0.0.1:41234', … }, …]
 *   … await routers.close();
 */
export function createRouterSupervisor(options: RouterSupervisorOptions): RouterSupervisor {
  if (!Array.isArray(options.regions) || options.regions.length === 0) throw invalidOption('regions', options.regions, 'a non-empty list of region slugs');
  if (new Set(options.regions).size !== options.regions.length) throw invalidOption('regions', options.regions, 'region slugs without repeats');
  const restartDelayMs = options.restartDelayMs ?? 200;
  if (!Number.isInteger(restartDelayMs) || restartDelayMs < 0) throw invalidOption('restartDelayMs', restartDelayMs, 'an integer of at least 0');
  const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
  const host = options.host ?? '127.0.0.1';
  const log = (options.logger ?? silentLogger()).child({ component: 'router-supervisor' });
  const slots: Slot[] = [];
  let restartCount = 0;
  let closing: Promise<void> | undefined;

  const spawnInto = async (slot: Slot): Promise<void> => {
    const child = await spawnRouterProcess({
      db: options.db,
      region: slot.region,
      port: slot.port,
      host,
      secret: options.secret,
      ...(options.pollIntervalMs !== undefined ? { pollIntervalMs: options.pollIntervalMs } : {}),
      ...(options.poolSize !== undefined ? { poolSize: options.poolSize } : {}),
    });
    if (closing) {
      child.child.kill('SIGTERM');
      return;
    }
    slot.current = child;
    const startedAt = Date.now();
    void child.exited.then((code) => {
      if (slot.current === child) slot.current = undefined;
      if (closing) return;
      // Dying young again and again (a bad config, the port taken) backs off instead of spinning.
      slot.backoff = Date.now() - startedAt < 5000 ? Math.min(Math.max(slot.backoff * 2, restartDelayMs, 50), 5000) : restartDelayMs;
      log.warn({ region: slot.region, pid: child.pid, code, restartInMs: slot.backoff, output: child.output().slice(-500) }, 'event router process died; restarting it');
      setTimeout(() => void restart(slot), slot.backoff).unref();
    });
  };

  const restart = async (slot: Slot): Promise<void> => {
    if (closing) return;
    try {
      await spawnInto(slot);
      restartCount++;
      log.info({ region: slot.region, pid: slot.current?.pid, url: slot.url }, 'event router process restarted');
    } catch (err) {
      slot.backoff = Math.min(Math.max(slot.backoff * 2, 50), 5000);
      log.error({ region: slot.region, err: (err as Error).message, retryInMs: slot.backoff }, 'event router process failed to restart');
      setTimeout(() => void restart(slot), slot.backoff).unref();
    }
  };

  const stopAll = async (): Promise<void> => {
    await Promise.all(
      slots.map(async (slot) => {
        const proc = slot.current;
        if (!proc) return;
        const timer = setTimeout(() => proc.child.kill('SIGKILL'), stopTimeoutMs);
        proc.child.kill('SIGTERM');
        await proc.exited;
        clearTimeout(timer);
      }),
    );
  };

  const list = (): SupervisedRouter[] => slots.map((s) => ({ region: s.region, url: s.url, pid: s.current?.pid ?? 0, up: s.current !== undefined }));

  return {
    async start() {
      for (const region of options.regions) {
        const port = await freePort(host);
        slots.push({ region, port, url: `http://${host}:${port}`, backoff: restartDelayMs });
      }
      try {
        await Promise.all(slots.map(spawnInto));
      } catch (err) {
        closing = stopAll();
        await closing;
        throw err;
      }
      log.info({ routers: list().map((r) => `${r.region} ${r.url}`) }, 'event routers running');
      return list();
    },
    close() {
      closing ??= stopAll();
      return closing;
    },
    routers: list,
    restarts: () => restartCount,
    kill(region, signal = 'SIGKILL') {
      const proc = slots.find((s) => s.region === region)?.current;
      return proc ? proc.child.kill(signal) : false;
    },
    processes: () => slots.filter((s) => s.current).map((s) => ({ region: s.region, pid: s.current!.pid })),
  };
}
