/**
 * The Event Router's wire protocol, shared by the router and its tests.
 * The DOBE agent's client side lives in dobe/router-client.ts.
 *
 *   GET  /v1/regions/:region/hypervisors/:id/events   text/event-stream
 *        request:  Authorization: Bearer hv.<id>.<mac>
 *                  Last-Event-ID: <event id>[,<event id>…]   (events the agent already holds, optional)
 *        stream:   retry: 2000
 *                  id: <event id>            one message per event, no `event:` line (type "message")
 *                  data: <AgentEvent JSON>
 *                  : hb                      heartbeat comment every ~15 s
 *                  event: switch             this hypervisor is no longer routed here: the stream ends
 *                  data: {"source":"god-query","version":n}
 *   POST /v1/regions/:region/hypervisors/:id/acks      application/json, at most 64 KiB
 *        body:     { "event_id": 17, "received_at": "2016-05-01T12:00:00.000Z" }
 *              or  { "acks": [ { "event_id", "received_at" }, … ] }   (1–100 items)
 *        200       { "event_id": 17, "duplicate": false }   (or a `results` array for the batch form)
 *   GET  /v1/regions/:region/hypervisors/:id/mode       { "source": "router" | "god-query", … }
 */
import type { StranglerError } from '../lib/errors.ts';
import { routerError } from './errors.ts';
import type { AgentEvent } from '../contracts/agent-event.ts';

export const EVENTS_PATH = '/v1/regions/:region/hypervisors/:id/events';
export const ACKS_PATH = '/v1/regions/:region/hypervisors/:id/acks';
export const MODE_PATH = '/v1/regions/:region/hypervisors/:id/mode';

export const ACK_BODY_LIMIT = 64 * 1024;
export const MAX_ACKS_PER_REQUEST = 100;
/** Ids an agent may list in Last-Event-ID; more are ignored (they are only an optimisation). */
export const MAX_HELD_IDS = 1000;
/** The reconnection delay the stream suggests (SSE `retry:`). */
export const RETRY_MS = 2000;

export interface AckItem {
  eventId: number;
  receivedAt: Date;
}

const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})$/;
/** A hypervisor's clock may run a little ahead; an hour ahead is a bug, not skew. */
const MAX_FUTURE_MS = 5 * 60_000;

function invalid(message: string): StranglerError {
  return routerError('ROUTER_ERR_VALIDATION', message);
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function ackItem(x: unknown, where: string, now: number): AckItem {
  if (!isObject(x)) throw invalid(`${where} must be an object with "event_id" and "received_at"`);
  for (const key of Object.keys(x)) {
    if (key !== 'event_id' && key !== 'received_at') throw invalid(`${where} has an unknown field "${key.slice(0, 64)}"`);
  }
  const id = x.event_id;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) throw invalid(`${where}.event_id must be a positive integer`);
  const at = x.received_at;
  if (typeof at !== 'string' || at.length > 40 || !ISO_RE.test(at)) {
    throw invalid(`${where}.received_at must be an ISO 8601 time such as "2016-05-01T12:00:00.000Z"`);
  }
  const ms = Date.parse(at);
  if (!Number.isFinite(ms) || ms < Date.UTC(2000, 0, 1) || ms > now + MAX_FUTURE_MS) {
    throw invalid(`${where}.received_at must be a real time, not in the future`);
  }
  return { eventId: id, receivedAt: new Date(ms) };
}

/**
 * Validates an ack body: one ack or `{ acks: [...] }`. Throws a 422
 * StranglerError naming the bad field; nothing is written before this passes.
 */
export function parseAckBody(body: unknown, now = Date.now()): { items: AckItem[]; batch: boolean } {
  if (isObject(body) && 'acks' in body) {
    for (const key of Object.keys(body)) if (key !== 'acks') throw invalid(`unknown field "${key.slice(0, 64)}" next to "acks"`);
    const acks = body.acks;
    if (!Array.isArray(acks) || acks.length < 1 || acks.length > MAX_ACKS_PER_REQUEST) {
      throw invalid(`"acks" must be an array of 1 to ${MAX_ACKS_PER_REQUEST} acks`);
    }
    return { items: acks.map((a, i) => ackItem(a, `acks[${i}]`, now)), batch: true };
  }
  return { items: [ackItem(body, 'the body', now)], batch: false };
}

/** The event ids of a Last-Event-ID header (one id, as EventSource sends, or a comma-separated list). */
export function parseLastEventId(header: string | string[] | undefined): number[] {
  if (typeof header !== 'string' || header.length === 0) return [];
  const ids: number[] = [];
  for (const part of header.split(',', MAX_HELD_IDS)) {
    const s = part.trim();
    if (!/^[1-9][0-9]{0,15}$/.test(s)) continue;
    const n = Number(s);
    if (Number.isSafeInteger(n)) ids.push(n);
  }
  return ids;
}

/** One event as an SSE message: `id:` is the event id, `data:` the row as one line of JSON. */
export function eventFrame(row: AgentEvent): string {
  return `id: ${row.event_id}\ndata: ${JSON.stringify(row)}\n\n`;
}

export function switchFrame(version: number): string {
  return `event: switch\ndata: ${JSON.stringify({ source: 'god-query', version })}\n\n`;
}

export const HEARTBEAT_FRAME = ': hb\n\n';
