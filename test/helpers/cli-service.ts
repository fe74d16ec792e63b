import { spawn, type ChildProcess } from 'node:child_process';
import { BIN } from './cli.ts';

export interface CliService<T> {
  /** The first line the command printed on stdout, parsed (`--json` services print one when up). */
  info: T;
  child: ChildProcess;
  output(): string;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/**
 * Starts a long-running `strangler` verb (`serve …`, `proxy`) with `--json`
 * and resolves once it printed its first line; rejects with its output if
 * it exits first.
 *
 * @example
 *   const proxy = await startCliService<{ url: string }>(['proxy', '--config', file, '--json'], { STRANGLER_STATE_TOKEN: token });
 *   await fetch(proxy.info.url + '/x'); await proxy.stop();
 */
export function startCliService<T>(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<CliService<T>> {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`strangler ${args.join(' ')} printed nothing within ${timeoutMs} ms:\n${out}\n${err}`));
    }, timeoutMs);
    let resolved = false;
    child.stdout!.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (!resolved && nl >= 0) {
        resolved = true;
        clearTimeout(timer);
        try {
          resolve({
            info: JSON.parse(out.slice(0, nl)) as T,
            child,
            output: () => out + err,
            stop: async () => {
              if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
              return exited;
            },
          });
        } catch {
          child.kill('SIGKILL');
          reject(new Error(`strangler ${args.join(' ')} printed a first line that is not JSON: ${out}\n${err}`));
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      if (!resolved) reject(new Error(`strangler ${args.join(' ')} exited (${code}) before it was up:\n${out}\n${err}`));
    });
  });
}
