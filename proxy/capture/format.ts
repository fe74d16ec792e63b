import { readFile } from 'node:fs/promises';

/**
 * The capture format: JSON Lines, one object per line. The first line is a
 * `meta` record; every other line is one request as the proxy saw it, with
 * secrets already redacted (redact.ts). Lines are written as exchanges
 * finish, so `t_ms` (when the request arrived, from the first one) is not
 * monotonic in the file: replayers sort by it.
 *
 * @example
 *   {"type":"meta","version":1,"started_at":"2026-12-01T12:00:00.000Z","sample_rate":1,"source":"proxy"}
 *   {"type":"request","t_ms":0,"method":"GET","path":"/v2/droplets?page=2","route":"/v2/droplets","feature":"droplet-api",
 *    "headers":{"authorization":"Bearer [REDACTED:3f9a0c1e2b7d]","accept":"application/json"},"status":200,"duration_ms":3.1}
 */
export interface CaptureMeta {
  type: 'meta';
  version: 1;
  started_at: string;
  /** Share of requests recorded (0..1]. */
  sample_rate: number;
  source: string;
}

export interface CaptureEntry {
  type: 'request';
  /** Milliseconds from the first recorded request's arrival to this one's. */
  t_ms: number;
  method: string;
  /** Path and query string, with secret query parameters redacted. */
  path: string;
  /** The route pattern the proxy matched (`/v2/droplets/:id`), or null for an unrouted request. */
  route: string | null;
  feature: string | null;
  /** Lower-case header names; hop-by-hop and per-connection headers dropped; secrets as `[REDACTED:<alias>]`. */
  headers: Record<string, string>;
  body?: string;
  body_encoding?: 'utf8' | 'base64';
  /** The body was larger than the recorder keeps: it is left out, and a replay sends none. */
  body_truncated?: boolean;
  status: number;
  duration_ms: number;
}

export interface Capture {
  meta?: CaptureMeta;
  /** Sorted by t_ms. */
  entries: CaptureEntry[];
}

export class CaptureFormatError extends Error {
  readonly code = 'REPLAY_ERR_BAD_CAPTURE';
}

const METHOD = /^[A-Z]{1,16}$/;

function checkEntry(o: Record<string, unknown>, line: number): CaptureEntry {
  const bad = (field: string, want: string) => new CaptureFormatError(`line ${line}: ${field} must be ${want}, got ${JSON.stringify(o[field])?.slice(0, 80)}`);
  if (typeof o.t_ms !== 'number' || !Number.isFinite(o.t_ms) || o.t_ms < 0) throw bad('t_ms', 'a number >= 0');
  if (typeof o.method !== 'string' || !METHOD.test(o.method)) throw bad('method', 'an HTTP method');
  if (typeof o.path !== 'string' || !o.path.startsWith('/')) throw bad('path', 'a path starting with /');
  if (typeof o.headers !== 'object' || o.headers === null || Array.isArray(o.headers)) throw bad('headers', 'an object');
  for (const [k, v] of Object.entries(o.headers)) if (typeof v !== 'string') throw new CaptureFormatError(`line ${line}: header ${k} must be a string`);
  if (o.body !== undefined && typeof o.body !== 'string') throw bad('body', 'a string');
  if (o.body_encoding !== undefined && o.body_encoding !== 'utf8' && o.body_encoding !== 'base64') throw bad('body_encoding', '"utf8" or "base64"');
  if (!Number.isInteger(o.status)) throw bad('status', 'an integer');
  return {
    type: 'request',
    t_ms: o.t_ms,
    method: o.method,
    path: o.path,
    route: typeof o.route === 'string' ? o.route : null,
    feature: typeof o.feature === 'string' ? o.feature : null,
    headers: o.headers as Record<string, string>,
    ...(o.body !== undefined ? { body: o.body as string, body_encoding: (o.body_encoding as 'utf8' | 'base64' | undefined) ?? 'utf8' } : {}),
    ...(o.body_truncated === true ? { body_truncated: true } : {}),
    status: o.status as number,
    duration_ms: typeof o.duration_ms === 'number' ? o.duration_ms : 0,
  };
}

/**
 * Parses a capture, checking every line; an error names the line.
 *
 * @example
 *   const { meta, entries } = parseCapture(await readFile('capture.jsonl', 'utf8'));
 */
export function parseCapture(text: string): Capture {
  let meta: CaptureMeta | undefined;
  const entries: CaptureEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '') continue;
    let o: unknown;
    try {
      o = JSON.parse(raw);
    } catch {
      throw new CaptureFormatError(`line ${i + 1}: not JSON`);
    }
    if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new CaptureFormatError(`line ${i + 1}: not a JSON object`);
    const rec = o as Record<string, unknown>;
    if (rec.type === 'meta') meta = rec as unknown as CaptureMeta;
    else if (rec.type === 'request') entries.push(checkEntry(rec, i + 1));
    else throw new CaptureFormatError(`line ${i + 1}: type must be "meta" or "request"`);
  }
  entries.sort((a, b) => a.t_ms - b.t_ms);
  return { ...(meta ? { meta } : {}), entries };
}

export async function readCapture(file: string): Promise<Capture> {
  return parseCapture(await readFile(file, 'utf8'));
}

/** The body to send for an entry, or undefined. */
export function entryBody(e: CaptureEntry): Buffer | undefined {
  if (e.body === undefined) return undefined;
  return Buffer.from(e.body, e.body_encoding === 'base64' ? 'base64' : 'utf8');
}

/** `GET /v2/droplets/:id`: how a request is counted in a mix (the route pattern, else the bare path). */
export function mixKey(e: Pick<CaptureEntry, 'method' | 'route' | 'path'>): string {
  return `${e.method} ${e.route ?? e.path.split('?')[0]}`;
}
