import { invalidOption } from '../errors.ts';
import { silentLogger, type Logger } from '../logger.ts';
import { freePort } from '../net/free-port.ts';
import type { ServiceProcess } from './service-process.ts';

export interface SupervisedProcess {
  name: string;
  url: string;
  port: number;
  /** The current process's pid, 0 while it is being restarted. */
  pid: number;
  up: boolean;
}

export interface ProcessSupervisorOptions {
  /** One process each, on a port fixed for the supervisor's life. */
  names: readonly string[];
  /** Starts `name`'s process on `port`; `ports` maps every name to its port (peers find each other through it). */
  spawn(name: string, port: number, ports: ReadonlyMap<string, number>): Promise<ServiceProcess>;
  host?: string;
  /** Ports chosen by the caller (name → port), e.g. so others can be told the URLs before start(); the rest get free ports. */
  ports?: Readonly<Record<string, number>>;
  logger?: Logger;
  /** For log lines: "harpoon", "scheduler-v2". */
  component: string;
  /** Wait before restarting a process that died (default 200 ms; doubles, up to 5 s, while it keeps dying young). */
  restartDelayMs?: number;
  /** Grace for SIGTERM at close before SIGKILL (default 10 s). */
  stopTimeoutMs?: number;
}

export interface ProcessSupervisor {
  /** Starts every process and resolves once each is ready. */
  start(): Promise<SupervisedProcess[]>;
  /** SIGTERM to every process (they drain), then SIGKILL after the grace; stops restarting. Idempotent. */
  close(): Promise<void>;
  list(): SupervisedProcess[];
  /** Processes restarted after dying, since start. */
  restarts(): number;
  /** Sends `signal` (default SIGKILL) to `name`'s process: chaos runs, tests. False if none is running. */
  kill(name: string, signal?: NodeJS.Signals): boolean;
  /** Resolves once `name` is up again (a restarted process answered /readyz), or rejects after `timeoutMs`. */
  whenUp(name: string, timeoutMs?: number): Promise<void>;
}

interface Slot {
  name: string;
  port: number;
  url: string;
  current?: ServiceProcess;
  backoff: number;
}

/**
 * Keeps a set of service processes running, each on a fixed port, and
 * restarts one on the same port when it dies: clients and peers reconnect
 * to the URL they know. Processes, not objects in the caller, so a kill -9
 * of one takes nothing else down.
 *
 * @example
 *   const s = createProcessSupervisor({ names: ['a', 'b'], component: 'harpoon', spawn: (name, port) => spawnServiceProcess({ … }) });
 *   await s.start(); s.kill('a'); await s.whenUp('a');
 */
export function createProcessSupervisor(options: ProcessSupervisorOptions): ProcessSupervisor {
  if (!Array.isArray(options.names) || options.names.length === 0) throw invalidOption('names', options.names, 'a non-empty list of process names');
  if (new Set(options.names).size !== options.names.length) throw invalidOption('names', options.names, 'names without repeats');
  const restartDelayMs = options.restartDelayMs ?? 200;
  if (!Number.isInteger(restartDelayMs) || restartDelayMs < 0) throw invalidOption('restartDelayMs', restartDelayMs, 'an integer of at least 0');
  const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
  const host = options.host ?? '127.0.0.1';
  const log = (options.logger ?? silentLogger()).child({ component: `${options.component}-supervisor` });
  const slots: Slot[] = [];
  const ports = new Map<string, number>();
  let restartCount = 0;
  let closing: Promise<void> | undefined;

  const spawnInto = async (slot: Slot): Promise<void> => {
    const proc = await options.spawn(slot.name, slot.port, ports);
    if (closing) {
      proc.child.kill('SIGTERM');
      return;
    }
    slot.current = proc;
    const startedAt = Date.now();
    void proc.exited.then((code) => {
      if (slot.current === proc) slot.current = undefined;
      if (closing) return;
      slot.backoff = Date.now() - startedAt < 5000 ? Math.min(Math.max(slot.backoff * 2, restartDelayMs, 50), 5000) : restartDelayMs;
      log.warn({ name: slot.name, pid: proc.pid, code, restartInMs: slot.backoff, output: proc.output().slice(-500) }, 'process died; restarting it');
      setTimeout(() => void restart(slot), slot.backoff).unref();
    });
  };

  const restart = async (slot: Slot): Promise<void> => {
    if (closing) return;
    try {
      await spawnInto(slot);
      restartCount++;
      log.info({ name: slot.name, pid: slot.current?.pid, url: slot.url }, 'process restarted');
    } catch (err) {
      slot.backoff = Math.min(Math.max(slot.backoff * 2, 50), 5000);
      log.error({ name: slot.name, err: (err as Error).message, retryInMs: slot.backoff }, 'process failed to restart');
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

  const list = (): SupervisedProcess[] => slots.map((s) => ({ name: s.name, url: s.url, port: s.port, pid: s.current?.pid ?? 0, up: s.current !== undefined }));

  return {
    async start() {
      for (const name of options.names) {
        const port = options.ports?.[name] ?? (await freePort(host));
        ports.set(name, port);
        slots.push({ name, port, url: `http://${host}:${port}`, backoff: restartDelayMs });
      }
      try {
        await Promise.all(slots.map(spawnInto));
      } catch (err) {
        closing = stopAll();
        await closing;
        throw err;
      }
      log.info({ processes: list().map((p) => `${p.name} ${p.url}`) }, 'processes running');
      return list();
    },
    close() {
      closing ??= stopAll();
      return closing;
    },
    list,
    restarts: () => restartCount,
    kill(name, signal = 'SIGKILL') {
      const proc = slots.find((s) => s.name === name)?.current;
      return proc ? proc.child.kill(signal) : false;
    },
    async whenUp(name, timeoutMs = 60_000) {
      const slot = slots.find((s) => s.name === name);
      if (!slot) throw invalidOption('name', name, `one of ${options.names.join(', ')}`);
      const deadline = Date.now() + timeoutMs;
      while (!slot.current) {
        if (Date.now() > deadline) throw new Error(`${options.component} ${name} was not up again within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}
