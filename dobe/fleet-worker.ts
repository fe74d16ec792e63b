/**
 * Entry point of one fleet worker process (forked by fleet.ts): runs a
 * slice of the hypervisors' agents so that no process nears the
 * 20,000 open-file limit. Talks to its parent over IPC only.
 */
import { createLogger } from '../lib/logger.ts';
import { createDobeAgent, type DobeAgent } from './agent.ts';
import { createAgentStats } from './agent-stats.ts';
import type { FromWorker, ToWorker } from './fleet-protocol.ts';
import { encodeHostTick, type HostProfile } from './host-metrics.ts';
import { loadPollingMode } from './polling-mode.ts';

const stats = createAgentStats();
const agents: DobeAgent[] = [];
// stderr: a worker shares its parent's stdout, which may carry a command's JSON result.
const logger = createLogger({ name: 'dobe-fleet-worker', level: process.env.LOG_LEVEL ?? 'warn', destination: process.stderr });
let statsTimer: NodeJS.Timeout | undefined;

function send(message: FromWorker): void {
  process.send?.(message);
}

function reportStats(): void {
  const mem = process.memoryUsage();
  send({ type: 'stats', stats: { ...stats }, rssBytes: mem.rss, heapUsedBytes: mem.heapUsed });
  // The hypervisors measure themselves on the same beat: the primary serves it as host metrics.
  send({ type: 'hosts', atMs: Date.now(), values: encodeHostTick(agents) });
}

async function start(msg: Extract<ToWorker, { type: 'start' }>): Promise<void> {
  const started = Date.now();
  const polling = msg.pollingMode ? await loadPollingMode(msg.pollingMode) : undefined;
  let next = 0;
  let connected = 0;
  // Bounded concurrency: thousands of simultaneous handshakes overflow the server's backlog.
  const opener = async () => {
    while (next < msg.serverIds.length) {
      const index = next++;
      const serverId = msg.serverIds[index]!;
      const router = msg.router;
      const agent = createDobeAgent({
        serverId,
        db: msg.db,
        ...(polling ? { polling } : {}),
        pollIntervalMs: msg.pollIntervalMs,
        workMs: msg.workMs,
        hostReportIntervalMs: msg.hostReportIntervalMs,
        stats,
        logger,
        ...(router
          ? {
              region: router.regions[index],
              routerUrl: (region: string) => router.urls[region] ?? router.urls['*'] ?? '',
              routerToken: router.tokens[index],
              modeCheckEvery: router.modeCheckEvery,
              routerRetryMs: router.retryMs,
              routerFallbackAfterMs: router.fallbackAfterMs,
            }
          : {}),
      });
      for (let attempt = 1; ; attempt++) {
        try {
          await agent.connect();
          break;
        } catch (err) {
          if (attempt >= 5) throw err;
          await new Promise((r) => setTimeout(r, 200 * attempt));
        }
      }
      agents.push(agent);
      connected++;
      if (connected % 250 === 0) send({ type: 'progress', connected, total: msg.serverIds.length });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, msg.connectConcurrency) }, opener));
  const profiles: Array<[number, HostProfile]> = [];
  for (const a of agents) {
    const p = a.profile();
    if (p) profiles.push([a.serverId, p]);
  }
  send({ type: 'profiles', profiles });
  reportStats();
  send({ type: 'started', agents: agents.length, connectMs: Date.now() - started });
  statsTimer = setInterval(reportStats, 1000);
}

async function stop(): Promise<void> {
  clearInterval(statsTimer);
  await Promise.all(agents.map((a) => a.close()));
  reportStats();
  send({ type: 'stopped' });
  process.disconnect?.();
}

process.on('message', (msg: ToWorker) => {
  if (msg.type === 'start') {
    start(msg).catch((err: Error) => {
      send({ type: 'failed', message: err.message });
    });
  } else if (msg.type === 'run') {
    for (const agent of agents) agent.run();
  } else if (msg.type === 'stop') {
    void stop();
  }
});
// An orphaned worker (parent killed) must not keep thousands of connections open.
process.on('disconnect', () => {
  void Promise.all(agents.map((a) => a.close())).finally(() => process.exit(0));
});
