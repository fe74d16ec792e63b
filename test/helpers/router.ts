import { request } from 'node:http';
import type { Knex } from 'knex';
import { mintHypervisorToken } from '../../lib/auth/hypervisor-token.ts';
import type { RoutingMode } from '../../lib/cutover/types.ts';
import type { DbConfig } from '../../lib/db/config.ts';
import { spawnRouterProcess, type RouterProcess } from '../../router/process.ts';
import { MYSQL_SOURCE_MODULE } from '../../legacy/router/mysql-source.ts';
import { createAgentStats, type AgentStats } from '../../dobe/agent-stats.ts';
import { createDobeAgent, type DobeAgent } from '../../dobe/agent.ts';
import { createSseParser, type SseMessage } from '../../lib/sse/parser.ts';
import type { HypervisorKeyRing } from '../../lib/auth/hypervisor-keys.ts';
import { TEST_HV_KEYS } from './database.ts';
import { godQueryMode } from '../../legacy/dobe/god-query-mode.ts';


/** Sets the `event-delivery` cutover row directly (the proxy's admin API owns it in production). */
export async function setEventDelivery(db: Knex, routing: { mode: RoutingMode; percent?: number; regions?: string[] | null }): Promise<void> {
  await setFeatureRouting(db, 'event-delivery', routing);
}

/** Sets any feature's cutover row directly (e.g. `event-writes`), bumping its version. */
export async function setFeatureRouting(db: Knex, feature: string, routing: { mode: RoutingMode; percent?: number; regions?: string[] | null }): Promise<void> {
  const row = {
    feature,
    mode: routing.mode,
    percent: routing.percent ?? (routing.mode === 'full' ? 100 : 0),
    regions: routing.regions ? JSON.stringify(routing.regions) : null,
    step_name: `test-${routing.mode}`,
  };
  await db.raw(
    'INSERT INTO cutover_features (feature, mode, percent, regions, step_name) VALUES (?, ?, ?, ?, ?) ' +
      'ON DUPLICATE KEY UPDATE mode = VALUES(mode), percent = VALUES(percent), regions = VALUES(regions), step_name = VALUES(step_name), ' +
      'version = version + 1, updated_at = CURRENT_TIMESTAMP(3)',
    [row.feature, row.mode, row.percent, row.regions, row.step_name],
  );
}

export function hvToken(serverId: number, region: string, keys: HypervisorKeyRing = TEST_HV_KEYS): string {
  return mintHypervisorToken(keys, serverId, region);
}

export { freePort } from '../../lib/net/free-port.ts';
export type { RouterProcess } from '../../router/process.ts';

/** Runs `node --import tsx router/main.ts` as a real child process and waits until it answers /readyz. */
export function startRouterProcess(options: {
  db: DbConfig;
  region: string;
  port: number;
  pollMs?: number;
  harpoon?: { urls: string[]; token: string };
  state?: { url: string; token: string; intervalMs?: number };
}): Promise<RouterProcess> {
  return spawnRouterProcess({
    db: options.db,
    region: options.region,
    port: options.port,
    pollIntervalMs: options.pollMs ?? 100,
    hypervisorKeys: TEST_HV_KEYS,
    legacySource: MYSQL_SOURCE_MODULE,
    ...(options.harpoon ? { harpoon: options.harpoon } : {}),
    ...(options.state ? { state: options.state } : {}),
  });
}

export interface TestStream {
  status: number;
  body: string;
  messages: SseMessage[];
  ended: Promise<void>;
  close(): void;
}

/** A bare SSE client for protocol tests: collects messages until closed or ended. */
export function openStream(url: string, headers: Record<string, string>): Promise<TestStream> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream', ...headers } });
    req.on('error', reject);
    req.on('response', (res) => {
      const messages: SseMessage[] = [];
      let body = '';
      const parser = createSseParser((m) => messages.push(m));
      res.setEncoding('utf8');
      const ended = new Promise<void>((r) => {
        res.on('close', () => r());
        res.on('end', () => r());
      });
      res.on('data', (chunk: string) => {
        body += chunk;
        parser.push(chunk);
      });
      res.on('error', () => {});
      resolve({ status: res.statusCode ?? 0, get body() { return body; }, messages, ended, close: () => req.destroy() });
    });
    req.end();
  });
}

export async function postAck(url: string, token: string | undefined, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

/** Event ids recorded more than once in event_executions (must always be empty). */
export async function duplicateExecutions(db: Knex, ids?: number[]): Promise<number[]> {
  const where = ids ? 'WHERE event_id IN (?)' : '';
  const [rows] = (await db.raw(`SELECT event_id FROM event_executions ${where} GROUP BY event_id HAVING COUNT(*) > 1`, ids ? [ids] : [])) as [
    Array<{ event_id: number }>,
  ];
  return rows.map((r) => Number(r.event_id));
}

export interface RoutedFleet {
  stats: AgentStats;
  agents: DobeAgent[];
  start(): Promise<void>;
  close(): Promise<void>;
}

/** Real DOBE agents for these hypervisors, on their region's router (dual-mode, sharing one stats object). */
export function routedAgents(options: { dobe: DbConfig; serverIds: number[]; region: string; routerUrl: string; workMs: number; retryMaxMs?: number }): RoutedFleet {
  const stats = createAgentStats();
  const agents = options.serverIds.map((serverId) =>
    createDobeAgent({ polling: godQueryMode,
      serverId,
      db: options.dobe,
      region: options.region,
      routerUrl: options.routerUrl,
      routerToken: hvToken(serverId, options.region),
      workMs: options.workMs,
      routerRetryMs: { min: 50, max: options.retryMaxMs ?? 400 },
      stats,
    }),
  );
  return {
    stats,
    agents,
    start: async () => void (await Promise.all(agents.map((a) => a.start()))),
    close: async () => void (await Promise.all(agents.map((a) => a.close()))),
  };
}
