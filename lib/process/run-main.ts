import { StranglerError } from '../errors.ts';
import type { Logger } from '../logger.ts';

/** What a service's main.ts runs: built from the environment, started, closed on a signal. */
export interface MainService<Started> {
  start(): Promise<Started>;
  close(): Promise<void>;
}

export interface RunMainOptions<S extends MainService<unknown>> {
  /** Names the service in the fatal line: `<name> failed to start`. */
  name: string;
  logger: Logger;
  /** The code logged for a failure that carries none (a StranglerError logs its own). */
  internalCode: string;
  /** Reads the environment and builds the service; a bad option throws (CONFIG_ERR_INVALID_OPTION). */
  create(): S | Promise<S>;
  /** After start() resolved, with what it resolved to: a ready line, for example. */
  started?(result: Awaited<ReturnType<S['start']>>, service: S): void;
}

/**
 * The part every service's main.ts shares: build, then close and exit 0 on
 * SIGINT/SIGTERM (and when a supervisor's IPC channel goes: a child
 * started by lib/process/supervisor.ts must not outlive it), start; a
 * failure to build or start is closed, logged as one fatal line with its
 * code and exits 1. The IPC channel is let go of on failure, or it would
 * keep the process alive and the supervisor would not see the exit.
 *
 * @example
 *   runMain({ name: 'harpoon', logger, internalCode: 'HARPOON_ERR_INTERNAL', create: () => createHarpoon(optionsFromEnv()) });
 */
export function runMain<S extends MainService<unknown>>(options: RunMainOptions<S>): Promise<void> {
  const { logger } = options;
  let service: S | undefined;
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void (service?.close() ?? Promise.resolve()).then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err: err instanceof Error ? err.message : String(err) }, `${options.name} did not close cleanly`);
        process.exit(1);
      },
    );
  };

  async function main(): Promise<void> {
    const created = await options.create();
    service = created;
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (process.send) process.once('disconnect', stop);
    let result: Awaited<ReturnType<S['start']>>;
    try {
      result = (await created.start()) as Awaited<ReturnType<S['start']>>;
    } catch (err) {
      await created.close().catch(() => {});
      throw err;
    }
    options.started?.(result, created);
  }

  return main().catch((err: unknown) => {
    const code = err instanceof StranglerError ? err.code : options.internalCode;
    logger.fatal({ code, err: err instanceof Error ? err.message : String(err) }, `${options.name} failed to start`);
    process.exitCode = 1;
    if (process.connected) process.disconnect();
  });
}
