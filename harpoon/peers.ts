/**
 * Peer fan-out between Harpoon replicas, with no broker.
 *
 * Each replica serves GET /v1/peer/changes: an SSE stream of the entries it
 * commits itself, pushed right after COMMIT. Each replica holds one such
 * stream to every peer and appends what it receives to its change log, so
 * an event written through any replica reaches the subscribers of all.
 *
 * What a push cannot carry — entries a peer committed but died before
 * pushing, or pushed while we were disconnected — is read from event_log
 * once, under the log lock, when a peer's stream opens and when it drops.
 * That is the only time a replica reads the log on its own: it reacts to a
 * peer going away, it never polls.
 */
import { request, type ClientRequest, type ServerResponse } from 'node:http';
import { createSseParser } from '../lib/sse/parser.ts';
import type { Logger } from '../lib/logger.ts';
import { createSseWriter, SharedFrame, startSse } from '../lib/sse/writer.ts';
import type { ChangeLog } from './change-log.ts';
import type { HarpoonMetrics } from './metrics.ts';
import type { Change } from './types.ts';

export const PEER_PATH = '/v1/peer/changes';

export interface Peers {
  /** The server side: a peer connected to us. */
  accept(res: ServerResponse): void;
  /** Pushes this replica's committed entries to every connected peer. */
  publish(entries: Change[]): void;
  start(): void;
  close(): void;
  connected(): number;
}

export function createPeers(options: {
  urls: string[];
  token: string;
  replica: string;
  log: ChangeLog;
  metrics: HarpoonMetrics;
  logger: Logger;
  heartbeatMs: number;
  /** A peer this far behind on our pushes is cut off; it reconnects and reads what it missed from event_log. */
  maxBufferedBytes: number;
  reconnectMs?: { min: number; max: number };
}): Peers {
  const { log, metrics, logger } = options;
  const backoff = options.reconnectMs ?? { min: 100, max: 2000 };
  const downstream = new Set<ServerResponse>();
  const upstream = new Map<string, ClientRequest>();
  const live = new Set<string>();
  let closed = false;
  let heartbeat: NodeJS.Timeout | undefined;
  const sse = createSseWriter({
    maxBufferedBytes: options.maxBufferedBytes,
    onSlowClient: (res) => {
      downstream.delete(res);
      metrics.peerSlowCutoffs.inc();
    },
  });

  function send(frame: string | SharedFrame): void {
    for (const res of downstream) if (sse.write(res, frame) === 'closed') downstream.delete(res);
  }

  function catchUp(why: string, url: string): void {
    log.catchUp().catch((err: unknown) => logger.warn({ peer: url, why, err: (err as Error).message }, 'reading the log after a peer change failed'));
  }

  function connect(url: string, delay: number): void {
    if (closed) return;
    const req = request(`${url}${PEER_PATH}`, {
      headers: { accept: 'text/event-stream', authorization: `Bearer ${options.token}`, 'x-harpoon-replica': options.replica },
      // A socket of its own: a pooled keep-alive socket would let a reconnect keep a closing peer's server open.
      agent: false,
    });
    upstream.set(url, req);
    let opened = false;
    const retry = () => {
      if (upstream.get(url) !== req) return;
      upstream.delete(url);
      if (live.delete(url)) metrics.peerConnected.set(live.size);
      // The peer may have committed entries it never pushed: read them now, under the lock.
      if (opened) catchUp('peer stream ended', url);
      const next = opened ? backoff.min : Math.min(backoff.max, delay * 2);
      setTimeout(() => connect(url, next), next).unref();
    };
    req.on('error', retry);
    req.on('close', retry);
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        logger.warn({ peer: url, status: res.statusCode }, 'peer refused the change stream');
        res.resume();
        return;
      }
      opened = true;
      live.add(url);
      metrics.peerConnected.set(live.size);
      // Whatever the peer committed while we were not listening.
      catchUp('peer stream opened', url);
      const parser = createSseParser((m) => {
        if (m.event !== 'changes') return;
        metrics.peerMessages.inc();
        let entries: Change[];
        try {
          entries = JSON.parse(m.data) as Change[];
        } catch {
          return;
        }
        log.append(entries).catch((err: unknown) => {
          logger.warn({ peer: url, err: (err as Error).message }, 'could not apply a peer push; reading the log');
          catchUp('apply failed', url);
        });
      });
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => parser.push(chunk));
      res.on('error', () => {});
    });
    req.end();
  }

  return {
    accept(res) {
      startSse(undefined, res, `: harpoon ${options.replica}\n\n`);
      downstream.add(res);
      res.on('close', () => downstream.delete(res));
    },
    publish(entries) {
      if (entries.length === 0 || downstream.size === 0) return;
      send(new SharedFrame(`event: changes\ndata: ${JSON.stringify(entries)}\n\n`));
    },
    start() {
      for (const url of options.urls) connect(url.replace(/\/+$/, ''), backoff.min);
      heartbeat = setInterval(() => {
        send(': hb\n\n');
      }, options.heartbeatMs);
      heartbeat.unref();
    },
    close() {
      closed = true;
      clearInterval(heartbeat);
      for (const req of upstream.values()) req.destroy();
      upstream.clear();
      for (const res of downstream) {
        res.end();
        res.socket?.end();
      }
      downstream.clear();
    },
    connected: () => live.size,
  };
}
