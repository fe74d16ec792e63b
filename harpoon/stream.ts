/**
 * GET /v1/stream: every committed change, in cursor order, as Server-Sent
 * Events, filtered per subscriber. Protocol: harpoon/README.md.
 *
 * A subscriber starts from its cursor (Last-Event-ID, else ?cursor=, else
 * "now"): entries still in memory are written at once; older ones are read
 * from event_log page by page (identical pages for many reconnecting
 * subscribers are one query). The switch from catch-up to live happens in
 * one synchronous step, so nothing falls between the two and nothing is
 * written twice. Live subscribers are indexed by region, so a change costs
 * work only for the subscribers that want its region.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ChangeLog } from './change-log.ts';
import type { HarpoonMetrics } from './metrics.ts';
import type { Change } from './types.ts';
import { createSseWriter, FAN_OUT_SLICE, forEachInSlices, SharedFrame, startSse } from '../lib/sse/writer.ts';
import { matches, type EventFilter } from './validate.ts';

export const STREAM_RETRY_MS = 1000;
const PAGE = 1000;

interface Subscriber {
  res: ServerResponse;
  filter: EventFilter;
  /** During catch-up: the last cursor written (or skipped). Live subscribers are at the log's head. */
  cursor: number;
  live: boolean;
  closed: boolean;
}

export interface StreamHub {
  open(req: IncomingMessage, res: ServerResponse, filter: EventFilter, cursor: number, label: string): void;
  count(): number;
  /** The lowest cursor a subscriber is still catching up from (the log pruner keeps what follows it). */
  oldestCatchUp(): number | undefined;
  closeAll(): void;
}

export function frame(change: Change): string {
  return `id: ${change.cursor}\ndata: ${JSON.stringify(change)}\n\n`;
}

/** Ends a catch-up that pruning overtook: the subscriber must read the state again (HARPOON_ERR_CURSOR_TOO_OLD). */
export function tooOldFrame(cursor: number, horizon: number): string {
  const message = `cursor ${cursor} is older than the oldest change kept (event_log pruned through ${horizon}); read the current state (GET /v1/events) and resume from its cursor`;
  return `event: too-old\ndata: ${JSON.stringify({ code: 'HARPOON_ERR_CURSOR_TOO_OLD', message, horizon })}\n\n`;
}

/** Tells an idle subscriber how far it is: a filtered stream resumes from here, not from its last matching change. */
export function cursorFrame(cursor: number): string {
  return `id: ${cursor}\nevent: cursor\ndata: {"cursor":${cursor}}\n\n`;
}

export function createStreamHub(options: {
  log: ChangeLog;
  readPage(after: number, upto: number, limit: number): Promise<Change[]>;
  /** The cursor through which event_log was pruned (log-pruner.ts): a page read from below it may have a gap. */
  readHorizon(): Promise<number>;
  metrics: HarpoonMetrics;
  heartbeatMs: number;
  maxBufferedBytes: number;
  onError(err: unknown): void;
}): StreamHub {
  const { log, metrics } = options;
  const all = new Set<Subscriber>();
  /** Live subscribers by region slug; '*' holds those without a region filter. */
  const byRegion = new Map<string, Set<Subscriber>>();

  function index(sub: Subscriber): void {
    const keys = sub.filter.regions.size > 0 ? [...sub.filter.regions] : ['*'];
    for (const k of keys) {
      let set = byRegion.get(k);
      if (!set) byRegion.set(k, (set = new Set()));
      set.add(sub);
    }
  }

  function unindex(sub: Subscriber): void {
    const keys = sub.filter.regions.size > 0 ? [...sub.filter.regions] : ['*'];
    for (const k of keys) byRegion.get(k)?.delete(sub);
  }

  function drop(sub: Subscriber): void {
    if (sub.closed) return;
    sub.closed = true;
    all.delete(sub);
    unindex(sub);
  }

  const sse = createSseWriter({ maxBufferedBytes: options.maxBufferedBytes, onSlowClient: () => metrics.slowCutoffs.inc() });

  /** False when the subscriber is gone or was cut off for not reading. */
  function write(sub: Subscriber, frame: string | SharedFrame): boolean {
    if (sub.closed || sse.write(sub.res, frame) !== 'written') {
      drop(sub);
      return false;
    }
    return true;
  }

  log.onAppend((entries) => {
    let frames = 0;
    // Several changes at once (a backlog under load): each socket is corked for the batch, so a subscriber's
    // frames leave in one writev instead of one syscall per change; the fan-out's cost per change then
    // shrinks as the backlog grows instead of feeding it.
    const corked = entries.length > 1 ? new Set<Socket>() : undefined;
    for (const change of entries) {
      // Framed only when someone wants it (with no subscriber of its region a change costs nothing here), then
      // once for all: every matching subscriber gets the same chunk (the fan-out's hot path).
      let shared: SharedFrame | undefined;
      for (const key of [change.event.region, '*']) {
        const set = byRegion.get(key);
        if (!set) continue;
        for (const sub of set) {
          if (!matches(sub.filter, change.event)) continue;
          shared ??= new SharedFrame(frame(change));
          const socket = sub.res.socket;
          if (corked && socket && !corked.has(socket)) {
            socket.cork();
            corked.add(socket);
          }
          if (write(sub, shared)) frames++;
        }
      }
    }
    if (corked) for (const socket of corked) socket.uncork();
    if (frames > 0) metrics.framesWritten.inc(frames);
    const done = Date.now();
    // A batch's entries share one commit time: parsed once per distinct text.
    let text: string | undefined;
    let committed = NaN;
    for (const change of entries) {
      if (change.committed_at !== text) committed = Date.parse((text = change.committed_at));
      if (Number.isFinite(committed)) metrics.deliveryLag.observe(Math.max(0, done - committed) / 1000);
    }
  });

  function writeCatchUp(sub: Subscriber, entries: Change[]): boolean {
    for (const change of entries) {
      if (change.cursor <= sub.cursor) continue;
      if (matches(sub.filter, change.event) && !write(sub, frame(change))) return false;
      sub.cursor = change.cursor;
    }
    return true;
  }

  async function catchUp(sub: Subscriber): Promise<void> {
    for (;;) {
      if (sub.closed) return;
      const memory = log.fromMemory(sub.cursor);
      if (memory) {
        // Synchronous from here to `live`: no append can run in between.
        if (!writeCatchUp(sub, memory)) return;
        sub.live = true;
        index(sub);
        return;
      }
      const upto = log.head();
      const from = sub.cursor;
      const page = await options.readPage(from, upto, PAGE);
      // Read after the page: a horizon at or below `from` proves no entry of the page was pruned before it was read.
      const horizon = await options.readHorizon();
      if (horizon > from) {
        metrics.tooOld.inc();
        if (!sub.closed) sse.write(sub.res, tooOldFrame(from, horizon));
        drop(sub);
        sub.res.end();
        return;
      }
      if (!writeCatchUp(sub, page)) return;
      if (page.length < PAGE) sub.cursor = Math.max(sub.cursor, upto);
      if (sse.buffered(sub.res) > sse.maxBufferedBytes / 2) {
        await new Promise<void>((resolve) => {
          sub.res.once('drain', resolve);
          sub.res.once('close', resolve);
        });
      }
    }
  }

  // One shared chunk for every subscriber, written a slice per turn of the loop: a live change committed
  // meanwhile is not held behind thousands of heartbeat writes.
  let beating = false;
  const heartbeat = setInterval(() => {
    if (beating) return;
    beating = true;
    const shared = new SharedFrame(cursorFrame(log.head()));
    void forEachInSlices(all, FAN_OUT_SLICE, (sub) => {
      if (sub.live) write(sub, shared);
    }).finally(() => (beating = false));
  }, options.heartbeatMs);
  heartbeat.unref();

  return {
    open(req, res, filter, cursor, label) {
      // The starting cursor first: a client that connected "from now" knows where to resume from.
      startSse(req, res, `retry: ${STREAM_RETRY_MS}\n: harpoon ${label}\n\n${cursorFrame(cursor)}`);
      const sub: Subscriber = { res, filter, cursor, live: false, closed: false };
      all.add(sub);
      res.on('close', () => drop(sub));
      catchUp(sub).catch((err: unknown) => {
        options.onError(err);
        drop(sub);
        res.destroy();
      });
    },
    count: () => all.size,
    oldestCatchUp() {
      let oldest: number | undefined;
      for (const sub of all) if (!sub.live && (oldest === undefined || sub.cursor < oldest)) oldest = sub.cursor;
      return oldest;
    },
    closeAll() {
      clearInterval(heartbeat);
      for (const sub of [...all]) {
        drop(sub);
        sub.res.end();
        // Not back to keep-alive: the client must reconnect (to a sibling), not reuse a socket of a closing server.
        sub.res.socket?.end();
      }
    },
  };
}
