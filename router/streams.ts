/**
 * The agents' streams and what was written to them: one stream per
 * hypervisor (the Map is the whole per-agent cost, no per-agent timer), the
 * events claimed and not yet acknowledged (`inflight`, kept so an ack needs
 * no read), and delivery of a claimed event to its host's current stream.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../lib/logger.ts';
import type { AgentEvent } from '../contracts/agent-event.ts';
import type { RouterMetrics } from './metrics.ts';
import { HEARTBEAT_FRAME, MAX_HELD_IDS, eventFrame, parseLastEventId, switchFrame } from './protocol.ts';
import { createSseWriter, FAN_OUT_SLICE, forEachInSlices, SharedFrame } from '../lib/sse/writer.ts';

export interface Stream {
  serverId: number;
  res: ServerResponse;
  /** Event ids this connection has carried (or the agent said it holds) and that are not acked yet. */
  sent: Set<number>;
}

export interface Inflight {
  row: AgentEvent;
  at: number;
}

export interface StreamHub {
  readonly streams: ReadonlyMap<number, Stream>;
  /** Claimed (by this process, or re-sent by it) and not acked: rows kept so an ack needs no read. */
  readonly inflight: Map<number, Inflight>;
  /** Adds a host's started SSE response (ending the stream it had); the ids in Last-Event-ID count as carried. */
  add(serverId: number, req: IncomingMessage, res: ServerResponse): Stream;
  /** Ends a stream with `event: switch` after taking it out of the claim set. */
  switchAway(stream: Stream, version: number): void;
  /** Writes a claimed event to its host's current stream unless that connection already carried it. */
  deliver(row: AgentEvent, first: boolean): void;
  /** Forgets an acknowledged (or finished) event. */
  settled(eventId: number, serverId: number | null): void;
  /** Re-sends claims older than `olderThanMs` to their hosts' streams; forgets old rows of hosts no longer here. */
  sweepInflight(olderThanMs: number): void;
  /** Forgets rows of hosts no longer here after a long time (a source that re-reads claims itself). */
  forgetStale(cutoffMs: number): void;
  startHeartbeat(intervalMs: number): void;
  /** Stops the heartbeat and ends every stream (agents reconnect). */
  endAll(): void;
  delivered(): number;
}

function parseUtc(value: string | null): number | undefined {
  if (!value) return undefined;
  const ms = Date.parse(value.includes('T') ? value : `${value.replace(' ', 'T')}Z`);
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * @example
 *   const hub = createStreamHub({ metric, log });
 *   hub.add(serverId, req, res); hub.deliver(row, true);
 */
export function createStreamHub(options: { metric: RouterMetrics; log: Logger }): StreamHub {
  const { metric, log } = options;
  const streams = new Map<number, Stream>();
  const inflight = new Map<number, Inflight>();
  let heartbeat: NodeJS.Timeout | undefined;
  let delivered = 0;

  function drop(stream: Stream): void {
    if (streams.get(stream.serverId) === stream) streams.delete(stream.serverId);
  }

  // A stream whose agent stops reading is cut off past 1 MiB of unsent frames; its events are re-sent on reconnect.
  const sse = createSseWriter({ maxBufferedBytes: 1 << 20, onSlowClient: () => metric.slowCutoffs.inc() });

  function write(stream: Stream, frame: string | SharedFrame): boolean {
    const result = sse.write(stream.res, frame);
    if (result === 'overflow') {
      log.warn({ server_id: stream.serverId }, 'agent is not reading its stream; cutting it off');
      drop(stream);
    }
    return result === 'written';
  }

  function deliver(row: AgentEvent, first: boolean): void {
    const entry = inflight.get(row.event_id);
    if (entry) entry.row = row;
    else inflight.set(row.event_id, { row, at: Date.now() });
    const stream = streams.get(row.server_id);
    if (!stream || stream.sent.has(row.event_id)) return;
    if (!write(stream, eventFrame(row))) return;
    stream.sent.add(row.event_id);
    delivered++;
    if (first) {
      metric.delivered.inc();
      const available = parseUtc(row.event_available_at ?? row.event_created_at);
      if (available !== undefined) metric.latency.observe(Math.max(0, (Date.now() - available) / 1000));
    } else {
      metric.redelivered.inc();
    }
  }

  function forgetStale(cutoffMs: number): void {
    for (const [id, entry] of inflight) if (entry.at < cutoffMs && !streams.has(entry.row.server_id)) inflight.delete(id);
  }

  return {
    streams,
    inflight,
    add(serverId, req, res) {
      const previous = streams.get(serverId);
      if (previous) {
        drop(previous);
        previous.res.end();
      }
      const stream: Stream = { serverId, res, sent: new Set(parseLastEventId(req.headers['last-event-id']).slice(0, MAX_HELD_IDS)) };
      streams.set(serverId, stream);
      res.on('close', () => drop(stream));
      return stream;
    },
    switchAway(stream, version) {
      // Out of the claim set first: nothing is claimed for this host after its switch is sent.
      drop(stream);
      metric.switches.inc();
      if (!stream.res.writableEnded && !stream.res.destroyed) stream.res.end(switchFrame(version));
    },
    deliver,
    settled(eventId, serverId) {
      inflight.delete(eventId);
      if (serverId !== null) streams.get(serverId)?.sent.delete(eventId);
    },
    sweepInflight(olderThanMs) {
      const now = Date.now();
      for (const [id, entry] of inflight) {
        if (entry.at < now - olderThanMs && streams.has(entry.row.server_id)) deliver(entry.row, false);
        else if (entry.at < now - Math.max(10 * olderThanMs, 5 * 60_000) && !streams.has(entry.row.server_id)) inflight.delete(id);
      }
    },
    forgetStale,
    startHeartbeat(intervalMs) {
      // A slice of streams per turn of the loop, one shared chunk: a claimed event is not held behind
      // thousands of heartbeat writes. A stream replaced or ended meanwhile is skipped.
      const frame = new SharedFrame(HEARTBEAT_FRAME);
      let beating = false;
      heartbeat = setInterval(() => {
        if (beating) return;
        beating = true;
        void forEachInSlices(streams.values(), FAN_OUT_SLICE, (stream) => {
          if (streams.get(stream.serverId) === stream) write(stream, frame);
        }).finally(() => (beating = false));
      }, intervalMs);
    },
    endAll() {
      clearInterval(heartbeat);
      for (const stream of [...streams.values()]) {
        drop(stream);
        stream.res.end();
      }
    },
    delivered: () => delivered,
  };
}
