import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { StranglerError, invalidOption } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { DbConfig } from './config.ts';
import { freePort } from '../net/free-port.ts';
import { readProcessMemory } from '../process/process-memory.ts';

const execFileP = promisify(execFile);
const DIR_PREFIX = 'strangler-mariadb-';
const SEARCH_PATH = ['/usr/sbin', '/usr/local/sbin', '/usr/bin', '/usr/local/bin', '/usr/libexec', '/opt/mysql/bin'];

export interface ThrowawayServer {
  config: DbConfig;
  /**
   * MariaDB's `extra_port` on a pooled server: connections there get a thread each and never wait
   * in the pool's queue behind the legacy's pollers. The migration's own control sessions use it.
   */
  controlPort?: number;
  dataDir: string;
  /** The running server's pid (a restart changes it). */
  readonly pid: number;
  maxConnections: number;
  openFilesLimit: number;
  /**
   * kill -9 of the server, then the same binary started again on the same port and data
   * directory (InnoDB recovers what was committed); resolves once it accepts connections.
   * For chaos runs: every client sees its connections die and must reconnect.
   */
  crashAndRestart(options?: { downMs?: number }): Promise<{ killedPid: number; pid: number }>;
  /**
   * Resolves when the server dies on its own (neither stop() nor crashAndRestart() asked for it): a
   * crash, or the kernel's OOM killer. Never rejects; pending for a server that lives until stop().
   */
  readonly died: Promise<ServerDeath>;
  stop(): Promise<void>;
}

/** How a throwaway server died, with the most memory it was seen holding. */
export interface ServerDeath {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The highest VmHWM read from /proc while it ran, restarts included (every 2 s; Linux only), bytes. */
  peakRssBytes: number | null;
}

/** How the server serves connections: a thread each (MySQL 5.6/5.7 Community, 2016), or MariaDB's pool. */
export type ThreadHandling = 'one-thread-per-connection' | 'pool-of-threads';

export interface ThrowawayOptions {
  /** Connections the run needs; the server gets this plus headroom. */
  maxConnections: number;
  /**
   * Default 'pool-of-threads' (MariaDB only): kinder to a machine holding thousands of clients.
   * 'one-thread-per-connection' is the 2016 server: one OS thread per client connection.
   */
  threadHandling?: ThreadHandling;
  logger: Logger;
  /** Milliseconds to wait for the server to accept connections. */
  startTimeoutMs?: number;
  /**
   * Further server settings as `--name=value` (for example `{ 'auto-increment-increment': 2 }`,
   * what Galera sets), after the defaults so they win.
   */
  settings?: Record<string, string | number>;
}

function which(names: string[]): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...SEARCH_PATH];
  for (const name of names) {
    for (const dir of dirs) {
      const candidate = join(dir, name);
      if (existsSync(candidate)) return candidate;
    }
  }
  return undefined;
}

/** True when a server binary is installed, so a throwaway server can be tried. */
export function throwawayAvailable(): boolean {
  return which(['mariadbd', 'mysqld']) !== undefined;
}

/** The soft open-files limit of this process, which the server inherits. */
export function openFilesSoftLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.split(/\s+/)[3];
    if (soft && /^\d+$/.test(soft)) return Number(soft);
  } catch {
    // not Linux: fall through to a conservative default
  }
  return 1024;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Servers whose owner died without stopping them (kill -9 of a demo or a
 * test run) would otherwise live forever: stop them and free their disk.
 */
export async function reapStaleServers(logger: Logger): Promise<number> {
  let reaped = 0;
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith(DIR_PREFIX)) continue;
    const dir = join(tmpdir(), entry);
    let owner: { ownerPid: number; serverPid?: number };
    try {
      owner = JSON.parse(await readFile(join(dir, 'owner.json'), 'utf8'));
    } catch {
      continue;
    }
    if (pidAlive(owner.ownerPid)) continue;
    if (owner.serverPid && pidAlive(owner.serverPid)) {
      try {
        process.kill(owner.serverPid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await rm(dir, { recursive: true, force: true });
    logger.info({ dir }, 'removed a throwaway MariaDB left by a process that died');
    reaped++;
  }
  return reaped;
}

async function initDataDir(serverBin: string, dataDir: string): Promise<void> {
  const installDb = which(['mariadb-install-db', 'mysql_install_db']);
  const runAsRoot = process.getuid?.() === 0 ? ['--user=root'] : [];
  // The installer's own temporary files go to a directory of this run: two runs initialising at the
  // same moment collided in the shared /tmp once. One retry covers what is left of such a race.
  const privateTmp = join(dataDir, '..', 'install-tmp');
  await mkdir(privateTmp, { recursive: true });
  const env = { ...process.env, TMPDIR: privateTmp };
  for (let attempt = 1; ; attempt++) {
    try {
      if (installDb && serverBin.endsWith('mariadbd')) {
        await execFileP(installDb, ['--no-defaults', `--datadir=${dataDir}`, '--auth-root-authentication-method=normal', '--skip-test-db', ...runAsRoot], { env });
      } else {
        // MySQL 5.7+/8: the server initialises its own data directory.
        await execFileP(serverBin, ['--no-defaults', '--initialize-insecure', `--datadir=${dataDir}`, ...runAsRoot], { env });
      }
      return;
    } catch (cause) {
      if (attempt < 2) {
        await rm(dataDir, { recursive: true, force: true });
        continue;
      }
      throw new StranglerError('DB_ERR_THROWAWAY_INIT', `could not initialise a data directory in ${dataDir}`, { cause });
    }
  }
}

async function waitReady(config: DbConfig, child: ChildProcess, errLog: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      const tail = (await readFile(errLog, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n');
      throw new StranglerError('DB_ERR_THROWAWAY_START', `the throwaway server exited with code ${child.exitCode}:\n${tail}`);
    }
    try {
      const conn = await mysql.createConnection({ ...config, connectTimeout: 1000 });
      await conn.end();
      return;
    } catch (err) {
      lastError = err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new StranglerError('DB_ERR_THROWAWAY_START', `the throwaway server did not accept connections within ${timeoutMs} ms`, {
    cause: lastError,
  });
}

/**
 * Makes the server the first thing the kernel's OOM killer takes (Linux): a run that drives the server
 * past the machine's memory (the 2016 legacy at 15,000 connections) then loses its own throwaway
 * database, not the user's shell, editor or other services. Best effort: raising one's own child's
 * score needs no privilege, and elsewhere there is nothing to set.
 */
function preferForOomKill(pid: number | undefined): void {
  if (!pid) return;
  try {
    writeFileSync(`/proc/${pid}/oom_score_adj`, '1000');
  } catch {
    // not Linux, or no /proc: nothing to set
  }
}

function settingArgs(settings: Record<string, string | number>): string[] {
  return Object.entries(settings).map(([name, value]) => {
    if (!/^[a-z0-9_-]+$/.test(name)) throw invalidOption('settings', name, 'server option names such as auto-increment-increment');
    if (!/^[A-Za-z0-9_.,-]*$/.test(String(value))) throw invalidOption(`settings.${name}`, value, 'a plain value (letters, digits, . , _ -)');
    return `--${name}=${value}`;
  });
}

/** Connections the control port takes: the admin's pools, the monitor, a demo's sampler, with room to spare. */
const CONTROL_CONNECTIONS = 64;

/**
 * Server flags for a thread handling. One thread per connection keeps every idle client's thread
 * cached (thread_cache_size) as MySQL 5.6/5.7 did; the pool caps threads at 2,000.
 */
function threadArgs(isMariaDb: boolean, handling: ThreadHandling, maxConnections: number, controlPort: number | undefined): string[] {
  if (handling === 'pool-of-threads') {
    if (!isMariaDb) return [];
    const control = controlPort ? [`--extra-port=${controlPort}`, `--extra-max-connections=${CONTROL_CONNECTIONS}`] : [];
    return ['--thread-handling=pool-of-threads', '--thread-pool-max-threads=2000', ...control];
  }
  return ['--thread-handling=one-thread-per-connection', `--thread-cache-size=${Math.min(16384, maxConnections)}`];
}

/**
 * Starts a private MariaDB (or MySQL) from the system binary in a temporary
 * data directory on a free port, with the connection and file limits the
 * run needs and the thread pool that lets one server hold 15,000 clients.
 * `stop()` shuts it down and deletes the directory.
 *
 * @example
 *   const server = await startThrowawayServer({ maxConnections: 16000, logger });
 *   // … use server.config …
 *   await server.stop();
 */
export async function startThrowawayServer(options: ThrowawayOptions): Promise<ThrowawayServer> {
  const serverBin = which(['mariadbd', 'mysqld']);
  if (!serverBin) {
    throw new StranglerError('DB_ERR_NO_SERVER_BINARY', 'neither mariadbd nor mysqld is installed (apt-get install mariadb-server)');
  }
  await reapStaleServers(options.logger);
  const dataRoot = await mkdtemp(join(tmpdir(), DIR_PREFIX));
  const dataDir = join(dataRoot, 'data');
  // A temporary directory of its own: a server starting deletes every `#sql*` file in its tmpdir, so with a
  // shared /tmp each new throwaway server removed the running ones' temporary tables ("Error on delete of
  // '/tmp/#sql-temptable-…'", seen in demos and PROCESSLIST reads while tests started servers).
  const tmpDir = join(dataRoot, 'tmp');
  await mkdir(tmpDir);
  await writeFile(join(dataRoot, 'owner.json'), JSON.stringify({ ownerPid: process.pid }));
  await initDataDir(serverBin, dataDir);

  const isMariaDb = serverBin.endsWith('mariadbd');
  const openFilesLimit = openFilesSoftLimit();
  // Each connection needs a descriptor; tables and logs need a few hundred more.
  const maxConnections = Math.max(200, Math.min(options.maxConnections + 100, openFilesLimit - 500));
  if (maxConnections < options.maxConnections) {
    options.logger.warn(
      { wanted: options.maxConnections, maxConnections, openFilesLimit },
      'the open-files limit caps the throwaway server below the connections this run wants (raise ulimit -n)',
    );
  }
  const errLog = join(dataRoot, 'error.log');
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const pooled = isMariaDb && (options.threadHandling ?? 'pool-of-threads') === 'pool-of-threads';
    let controlPort = pooled ? await freePort() : undefined;
    while (controlPort === port) controlPort = await freePort();
    const args = [
      '--no-defaults',
      `--datadir=${dataDir}`,
      `--tmpdir=${tmpDir}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--socket=${join(dataRoot, 'mysqld.sock')}`,
      `--pid-file=${join(dataRoot, 'mysqld.pid')}`,
      `--log-error=${errLog}`,
      `--max-connections=${maxConnections}`,
      `--open-files-limit=${openFilesLimit}`,
      '--table-open-cache=400',
      '--back-log=4096',
      '--max-connect-errors=1000000',
      '--skip-name-resolve',
      '--innodb-buffer-pool-size=256M',
      '--innodb-flush-log-at-trx-commit=2',
      '--innodb-lock-wait-timeout=10',
      // userstat: per-user statement counts (information_schema.USER_STATISTICS) from the first statement on.
      ...(isMariaDb ? ['--userstat=1'] : []),
      ...threadArgs(isMariaDb, options.threadHandling ?? 'pool-of-threads', maxConnections, controlPort),
      ...(process.getuid?.() === 0 ? ['--user=root'] : []),
      ...settingArgs(options.settings ?? {}),
    ];
    const child = spawn(serverBin, args, { stdio: 'ignore' });
    // Recorded before the server is ready, so an owner killed during start-up still leaves a reapable server.
    await writeFile(join(dataRoot, 'owner.json'), JSON.stringify({ ownerPid: process.pid, serverPid: child.pid }));
    const config: DbConfig = { host: '127.0.0.1', port, user: 'root', password: '' };
    try {
      await waitReady(config, child, errLog, options.startTimeoutMs ?? 30_000);
    } catch (err) {
      child.kill('SIGKILL');
      const log = await readFile(errLog, 'utf8').catch(() => '');
      if (attempt < 2 && /Address already in use|Can't start server/.test(log)) continue;
      await rm(dataRoot, { recursive: true, force: true });
      throw err;
    }
    let current = child;
    const killOnExit = () => current.kill('SIGKILL');
    process.once('exit', killOnExit);
    let stopped: Promise<void> | undefined;
    /** The child whose exit crashAndRestart() caused (not a death). */
    let restarting: ChildProcess | undefined;
    let reportDeath!: (death: ServerDeath) => void;
    const died = new Promise<ServerDeath>((r) => (reportDeath = r));
    let peak: number | null = null;
    const watch = (proc: ChildProcess) => {
      preferForOomKill(proc.pid);
      proc.once('exit', (code, signal) => {
        if (stopped || restarting === proc) return;
        clearInterval(memory);
        reportDeath({ pid: proc.pid ?? 0, code, signal, peakRssBytes: peak });
      });
    };
    // The peak is read while the process lives: once the kernel has killed it, /proc has nothing left to say.
    const memory = setInterval(() => {
      if (!current.pid) return;
      void readProcessMemory(current.pid).then(({ peakBytes }) => {
        if (peakBytes > 0) peak = Math.max(peak ?? 0, peakBytes);
      });
    }, 2_000);
    memory.unref();
    watch(child);
    options.logger.info({ port, controlPort, dataDir, maxConnections, binary: serverBin }, 'started a throwaway database server');
    return {
      config,
      ...(controlPort ? { controlPort } : {}),
      dataDir,
      get pid() {
        return current.pid ?? 0;
      },
      maxConnections,
      openFilesLimit,
      died,
      async crashAndRestart(restartOptions = {}) {
        if (stopped) throw new StranglerError('DB_ERR_THROWAWAY_START', 'the throwaway server was stopped; it cannot be restarted');
        const killedPid = current.pid ?? 0;
        if (current.exitCode === null && current.signalCode === null) {
          const exited = new Promise<void>((r) => current.once('exit', () => r()));
          restarting = current;
          current.kill('SIGKILL');
          await exited;
        }
        if (restartOptions.downMs) await new Promise((r) => setTimeout(r, restartOptions.downMs));
        // The same port may linger for a moment after a SIGKILL: a few tries, as at start-up.
        for (let retry = 0; ; retry++) {
          const next = spawn(serverBin, args, { stdio: 'ignore' });
          await writeFile(join(dataRoot, 'owner.json'), JSON.stringify({ ownerPid: process.pid, serverPid: next.pid }));
          current = next;
          try {
            await waitReady(config, next, errLog, options.startTimeoutMs ?? 60_000);
            watch(next);
            return { killedPid, pid: next.pid ?? 0 };
          } catch (err) {
            next.kill('SIGKILL');
            if (retry >= 4) throw err;
            await new Promise((r) => setTimeout(r, 500));
          }
        }
      },
      stop() {
        stopped ??= (async () => {
          clearInterval(memory);
          process.removeListener('exit', killOnExit);
          const child = current;
          if (child.exitCode === null && child.signalCode === null) {
            const exited = new Promise<void>((r) => child.once('exit', () => r()));
            child.kill('SIGTERM');
            const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
            await exited;
            clearTimeout(timer);
          }
          await rm(dataRoot, { recursive: true, force: true });
        })();
        return stopped;
      },
    };
  }
}
