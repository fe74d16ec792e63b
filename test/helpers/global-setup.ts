import type { TestProject } from 'vitest/node';
import { provisionServer, type ProvisionedServer } from '../../lib/db/provision.ts';
import { createLogger } from '../../lib/logger.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    dbAdmin: { host: string; port: number; user: string; password: string };
    dbSource: string;
    /** The server's control port (a pooled MariaDB's extra_port: a thread per connection, no queue), 0 when it has none. */
    dbControlPort: number;
  }
}

/** Connections the whole suite may open at once: fleets of a few hundred agents plus pools. */
export const SUITE_CONNECTIONS = 800;

let server: ProvisionedServer | undefined;

/**
 * One server for the whole run (each test file makes its own database on
 * it). The machine's default server allows 151 connections, so the fleet
 * tests make this start a throwaway mariadbd: the fallback path runs in CI.
 */
export async function setup(project: TestProject): Promise<void> {
  await provideServer(project, SUITE_CONNECTIONS);
}

/** Provisions a server that allows `needConnections` and provides it to the run's tests (test/strangled asks for fewer). */
export async function provideServer(project: TestProject, needConnections: number): Promise<void> {
  const logger = createLogger({ level: process.env.LOG_LEVEL ?? 'warn' });
  server = await provisionServer({ logger, needConnections });
  project.provide('dbAdmin', server.admin);
  project.provide('dbSource', server.source);
  project.provide('dbControlPort', server.controlPort ?? 0);
}

export async function teardown(): Promise<void> {
  await server?.release();
}
