import { existsSync } from 'node:fs';
import { StranglerError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { DbConfig } from './config.ts';

/** Docker is reachable if DOCKER_HOST is set or the default socket exists. */
export function dockerAvailable(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.DOCKER_HOST) || existsSync('/var/run/docker.sock');
}

/**
 * A MySQL 8 container through Testcontainers, for machines that have Docker
 * but no server binary. The package is an optional dependency, loaded only here.
 */
export async function startContainerServer(options: {
  maxConnections: number;
  logger: Logger;
}): Promise<{ config: DbConfig; stop(): Promise<void> }> {
  let mod: typeof import('@testcontainers/mysql');
  try {
    mod = await import('@testcontainers/mysql');
  } catch (cause) {
    throw new StranglerError('DB_ERR_NO_TESTCONTAINERS', 'Docker is available but @testcontainers/mysql is not installed', { cause });
  }
  const container = await new mod.MySqlContainer('mysql:8.0')
    .withRootPassword('strangler')
    .withCommand([`--max-connections=${options.maxConnections + 100}`])
    .start();
  options.logger.info({ host: container.getHost(), port: container.getPort() }, 'started a MySQL container');
  let stopped: Promise<void> | undefined;
  return {
    config: { host: container.getHost(), port: container.getPort(), user: 'root', password: 'strangler' },
    stop() {
      stopped ??= container.stop().then(() => undefined);
      return stopped;
    },
  };
}
