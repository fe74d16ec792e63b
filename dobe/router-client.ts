import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Logger } from '../lib/logger.ts';
import type { AgentStats } from './agent-stats.ts';
import type { AgentEvent } from '../contracts/agent-event.ts';
import { createSseParser } from '../lib/sse/parser.ts';

/** An event this hypervisor has received (or carried over from the god query) and not yet seen recorded. */
export interface HeldEvent {
  row: AgentEvent;
  receivedAt: Date;
  /** Whether the work is done (only the ack is missing). */
  executed: boolean;
}

export interface RouterSessionOptions {
  serverId: number;
  /** Full URL of this hypervisor's stream: …/v1/regions/:region/hypervisors/:id/events. */
  eventsUrl: string;
  /** Full URL of its acks: …/v1/regions/:region/hypervisors/:id/acks. */
  acksUrl: string;
  token: string;
  workMs: number;
  retryMs: { min: number; max: number };
  /** No byte (not even a heartbeat) for this long: the stream is dead, reconnect. */
  idleTimeoutMs: number;
  /** No stream for this long: ask `shouldFallBack` whether the cutover went back to the god query. */
  fallbackAfterMs: number;
  shouldFallBack(): Promise<boolean>;
  /** Called once per event whose ack the router answered: `recorded` false for a harmless duplicate. */
  onAcked(row: AgentEvent, recorded: boolean): void;
  /** Executed events from the god-query side whose completion is not recorded yet: acked first. */
  carry: HeldEvent[];
  stats: AgentStats;
  log: Logger;
  random: () => number;
  now: () => Date;
}

export interface RouterSessionEnd {
  /** `switch`: the router (or the cutover state, read after a long outage) sent this host back to the god query. */
  reason: 'switch' | 'closed';
  /** Events executed whose ack never got through: the god-query side records them (completeEvent). */
  leftover: HeldEvent[];
}

export interface RouterSession {
  readonly done: Promise<RouterSessionEnd>;
  /** Stops reading, finishes the event being executed, gives acks a moment, ends. Idempotent. */
  close(): Promise<RouterSessionEnd>;
}

/** Streams never reuse sockets (each is its own long-lived connection); acks share keep-alive sockets. */
const streamAgents = { http: new HttpAgent({ keepAlive: false, maxSockets: Infinity }), https: new HttpsAgent({ keepAlive: false, maxSockets: Infinity }) };
const ackAgents = {
  http: new HttpAgent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 64 }),
  https: new HttpsAgent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 64 }),
};

function send(url: string, options: { method: string; headers: Record<string, string | number>; stream: boolean }): ClientRequest {
  const https = url.startsWith('https:');
  const agents = options.stream ? streamAgents : ackAgents;
  return (https ? httpsRequest : httpRequest)(url, { method: options.method, headers: options.headers, agent: https ? agents.https : agents.http });
}

const ACKS_PER_REQUEST = 50;
/** Recently acked ids, to drop a resend that raced its ack (a few suffice: the router stops resending once done is committed). */
const RECENT_IDS = 128;
const ACK_DRAIN_MS = 5000;

interface AckResult {
  event_id: number;
  duplicate?: boolean;
  error?: string;
}

class AckError extends Error {
  constructor(
    message: string,
    readonly retry: boolean,
  ) {
    super(message);
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The router side of a dual-mode DOBE agent: one SSE stream to the
 * region's router (through the proxy in the demo), a sequential executor,
 * and an ack queue that batches whatever completes while a request is in
 * flight. It holds no MySQL connection. Duplicated deliveries (a resend
 * after a reconnect) are dropped by event id; the events the agent holds
 * go out in Last-Event-ID so the router does not resend them at all.
 */
export function startRouterSession(o: RouterSessionOptions): RouterSession {
  const held = new Map<number, HeldEvent>();
  const queue: number[] = [];
  const ackQueue: HeldEvent[] = [];
  const recent = new Set<number>();
  /** Executed events whose acks the router refused outright (not retried). */
  const refused = new Map<number, HeldEvent>();
  const recentOrder: number[] = [];
  let current: ClientRequest | undefined;
  let working = false;
  let acking = false;
  let ackRetry: NodeJS.Timeout | undefined;
  let ackFailures = 0;
  /** No more stream reads. */
  let stopping = false;
  /** No more executions (close). */
  let halted = false;
  /** No more ack requests (the session is handing its leftovers over). */
  let acksClosed = false;
  let switched = false;
  let lastStreamAt = Date.now();
  let lastFallbackCheck = Date.now();
  let wake: (() => void) | undefined;
  let ending: Promise<RouterSessionEnd> | undefined;
  let resolveDone!: (end: RouterSessionEnd) => void;
  const done = new Promise<RouterSessionEnd>((r) => (resolveDone = r));

  for (const c of o.carry) {
    held.set(c.row.event_id, c);
    ackQueue.push(c);
  }

  function remember(id: number): void {
    if (recent.has(id)) return;
    recent.add(id);
    recentOrder.push(id);
    if (recentOrder.length > RECENT_IDS) recent.delete(recentOrder.shift()!);
  }

  function onMessage(data: string): void {
    let row: AgentEvent;
    try {
      row = JSON.parse(data) as AgentEvent;
    } catch {
      o.stats.errors++;
      return;
    }
    if (typeof row?.event_id !== 'number' || row.server_id !== o.serverId) {
      o.log.warn({ event_id: row?.event_id }, 'ignoring a malformed event or one for another hypervisor');
      o.stats.errors++;
      return;
    }
    if (held.has(row.event_id) || recent.has(row.event_id)) return;
    o.stats.routerEvents++;
    held.set(row.event_id, { row, receivedAt: o.now(), executed: false });
    queue.push(row.event_id);
    void pump();
  }

  async function pump(): Promise<void> {
    if (working) return;
    working = true;
    try {
      while (queue.length > 0 && !halted) {
        const id = queue.shift()!;
        const h = held.get(id);
        if (!h) continue;
        if (o.workMs > 0) await sleep(o.workMs);
        h.executed = true;
        ackQueue.push(h);
        flushAcks();
      }
    } finally {
      working = false;
    }
  }

  function flushAcks(): void {
    if (acking || ackRetry || acksClosed || ackQueue.length === 0) return;
    acking = true;
    const batch = ackQueue.splice(0, ACKS_PER_REQUEST);
    postAcks(batch)
      .then(
        (results) => {
          ackFailures = 0;
          const byId = new Map(results.map((r) => [r.event_id, r]));
          for (const h of batch) {
            const r = byId.get(h.row.event_id);
            held.delete(h.row.event_id);
            remember(h.row.event_id);
            if (r && !r.error) o.onAcked(h.row, !r.duplicate);
            else {
              o.stats.errors++;
              o.log.warn({ event_id: h.row.event_id, code: r?.error }, 'the router refused an ack');
            }
          }
        },
        (err: AckError) => {
          if (err.retry) {
            ackQueue.unshift(...batch);
            ackFailures++;
            const delay = Math.min(o.retryMs.max, o.retryMs.min * 2 ** Math.min(ackFailures, 8));
            ackRetry = setTimeout(() => {
              ackRetry = undefined;
              flushAcks();
            }, delay * (0.5 + o.random() / 2));
          } else {
            // A refusal (401/403/404/422: a misrouted or misconfigured path) will not change by retrying. The
            // event stays claimed; if this session ends in a switch, the god-query side records it.
            for (const h of batch) {
              held.delete(h.row.event_id);
              refused.set(h.row.event_id, h);
              o.stats.errors++;
            }
            o.log.warn({ err: err.message, events: batch.length }, 'the router refused acks');
          }
        },
      )
      .finally(() => {
        acking = false;
        flushAcks();
      });
  }

  function postAcks(batch: HeldEvent[]): Promise<AckResult[]> {
    const items = batch.map((h) => ({ event_id: h.row.event_id, received_at: h.receivedAt.toISOString() }));
    const body = JSON.stringify(items.length === 1 ? items[0] : { acks: items });
    return new Promise((resolve, reject) => {
      let req: ClientRequest;
      try {
        req = send(o.acksUrl, {
          method: 'POST',
          stream: false,
          headers: { authorization: `Bearer ${o.token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        });
      } catch (err) {
        reject(new AckError(`cannot send acks to ${o.acksUrl}: ${(err as Error).message}`, false));
        return;
      }
      req.setTimeout(15_000, () => req.destroy(new Error('ack timed out')));
      req.on('error', (err) => reject(new AckError(err.message, true)));
      req.on('response', (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => reject(new AckError(err.message, true)));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          let parsed: { results?: AckResult[]; event_id?: number; duplicate?: boolean; code?: string } = {};
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            // A proxy's HTML error page, say: treated by status below.
          }
          if (status === 200) {
            resolve(parsed.results ?? [{ event_id: items[0]!.event_id, duplicate: Boolean(parsed.duplicate) }]);
          } else if (status === 404 && parsed.code === 'ROUTER_ERR_EVENT_NOT_FOUND') {
            resolve([{ event_id: items[0]!.event_id, error: parsed.code }]);
          } else if (status === 409) {
            resolve([{ event_id: items[0]!.event_id, error: parsed.code ?? 'ROUTER_ERR_NOT_CLAIMED' }]);
          } else {
            reject(new AckError(`ack answered ${status} ${parsed.code ?? ''}`.trim(), status >= 500 || status === 429 || status === 0));
          }
        });
      });
      req.end(body);
    });
  }

  /** One stream: resolves when it ends, with why. */
  function openStream(): Promise<{ outcome: 'switch' | 'ended' | 'refused' | 'error'; status?: number }> {
    return new Promise((resolve) => {
      let settled = false;
      const finish = (v: { outcome: 'switch' | 'ended' | 'refused' | 'error'; status?: number }) => {
        if (settled) return;
        settled = true;
        current = undefined;
        resolve(v);
      };
      const headers: Record<string, string> = { accept: 'text/event-stream', authorization: `Bearer ${o.token}` };
      const holding = [...held.keys()].slice(0, 1000);
      if (holding.length > 0) headers['last-event-id'] = holding.join(',');
      let req: ClientRequest;
      try {
        req = send(o.eventsUrl, { method: 'GET', headers, stream: true });
      } catch (err) {
        o.log.error({ err: (err as Error).message }, 'cannot open the event stream (bad router URL?)');
        finish({ outcome: 'refused', status: 0 });
        return;
      }
      current = req;
      req.setTimeout(o.idleTimeoutMs, () => req.destroy(new Error('stream idle')));
      req.on('error', () => finish({ outcome: 'error' }));
      req.on('close', () => finish({ outcome: 'ended' }));
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          // The refusal's JSON says why (its code); read a little of it for the log, then drop the stream.
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            if (body.length < 2048) body += chunk;
          });
          res.once('end', () => {
            let why: { code?: unknown; message?: unknown } = {};
            try {
              why = JSON.parse(body) as typeof why;
            } catch {
              // not JSON: the status alone
            }
            o.log.warn({ status, code: why.code, message: typeof why.message === 'string' ? why.message.slice(0, 200) : undefined }, 'the router refused the event stream');
            finish({ outcome: 'refused', status });
            req.destroy();
          });
          res.once('error', () => finish({ outcome: 'refused', status }));
          return;
        }
        lastStreamAt = Date.now();
        o.stats.routerStreams++;
        res.once('close', () => o.stats.routerStreams--);
        res.setEncoding('utf8');
        const parser = createSseParser((m) => {
          if (m.event === 'switch') {
            finish({ outcome: 'switch' });
            req.destroy();
          } else if (m.event === 'message') {
            onMessage(m.data);
          }
        });
        res.on('data', (chunk: string) => {
          lastStreamAt = Date.now();
          parser.push(chunk);
        });
        res.on('end', () => finish({ outcome: 'ended' }));
        res.on('error', () => finish({ outcome: 'error' }));
      });
      req.end();
    });
  }

  async function connectLoop(): Promise<void> {
    let failures = 0;
    while (!stopping) {
      const { outcome, status } = await openStream();
      if (stopping) break;
      if (outcome === 'switch') {
        switched = true;
        break;
      }
      if (outcome === 'ended') failures = 0;
      else {
        failures++;
        if (outcome === 'refused' && status === 0) o.log.warn({ status }, 'the router refused the event stream');
        o.stats.reconnects++;
      }
      const delay = Math.min(o.retryMs.max, o.retryMs.min * 2 ** Math.min(failures, 8)) * (0.5 + o.random() / 2);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, delay);
      });
      wake = undefined;
      if (stopping) break;
      const now = Date.now();
      if (now - lastStreamAt >= o.fallbackAfterMs && now - lastFallbackCheck >= o.fallbackAfterMs) {
        lastFallbackCheck = now;
        if (await o.shouldFallBack().catch(() => false)) {
          o.log.info('no router reachable and the cutover state says god query: switching back');
          switched = true;
          break;
        }
      }
    }
  }

  async function until(check: () => boolean, deadlineMs: number): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    while (!check() && Date.now() < deadline) await sleep(20);
  }

  function end(reason: 'switch' | 'closed'): Promise<RouterSessionEnd> {
    ending ??= (async () => {
      stopping = true;
      current?.destroy();
      wake?.();
      // In-flight work finishes first: everything delivered is executed on a switch; on close, just the current event.
      if (reason === 'closed') halted = true;
      await until(() => !working && (halted || queue.length === 0), 60_000);
      // Acks get a few seconds, less when the router keeps failing them (it is down: the other side records them).
      await until(() => (!acking && ackQueue.length === 0) || ackFailures >= 3, reason === 'closed' ? 2000 : ACK_DRAIN_MS);
      acksClosed = true;
      clearTimeout(ackRetry);
      ackRetry = undefined;
      halted = true;
      await until(() => !acking, 16_000);
      for (const [id, h] of held) if (h.executed) refused.set(id, h);
      const leftover = [...refused.values()];
      const result: RouterSessionEnd = { reason, leftover };
      resolveDone(result);
      return result;
    })();
    return ending;
  }

  void pump();
  flushAcks();
  void connectLoop().then(() => {
    if (switched) void end('switch');
  });

  return {
    done,
    close: () => end('closed'),
  };
}
