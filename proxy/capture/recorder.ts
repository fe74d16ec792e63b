import { createWriteStream, type WriteStream } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { invalidOption } from '../../lib/errors.ts';
import type { CaptureEntry, CaptureMeta } from './format.ts';
import { redactBody, redactHeaders, redactPath } from './redact.ts';

/** What the proxy tells its `onExchange` hook about each finished request (see ProxyOptions.onExchange). */
export interface ProxyExchange {
  method: string;
  /** The request target as received (path and query). */
  url: string;
  headers: IncomingHttpHeaders;
  /** The request body, when it had one (the proxy reads bodies before forwarding). */
  body: Buffer | undefined;
  /** The status sent to the client; 499 when it left before any answer. */
  status: number;
  /** performance.now() when the request arrived. */
  startedAt: number;
  durationMs: number;
  feature: string | undefined;
  route: string | undefined;
  target: 'legacy' | 'new' | undefined;
}

export interface CaptureRecorderOptions {
  /** The JSONL file to write (appended to if it exists; a meta line starts each recording). */
  file: string;
  /** Share of requests to record, 0 < rate <= 1 (default 1). */
  sampleRate?: number;
  /** Bodies larger than this are left out (marked body_truncated). Default 64 KiB. */
  maxBodyBytes?: number;
  /** Stop after this many entries (default unlimited). */
  maxEntries?: number;
  /** Where the capture came from, for the meta line. */
  source?: string;
  /** Sampling randomness (tests pass a seeded one). */
  random?: () => number;
  now?: () => Date;
}

export interface CaptureStats {
  recorded: number;
  /** Not sampled. */
  skipped: number;
  /** Sampled but dropped because the file could not keep up (the proxy is never slowed). */
  dropped: number;
  file: string;
}

export interface CaptureRecorder {
  /** The proxy hook: `createProxy({ …, onExchange: recorder.record })`. Never throws. */
  record(exchange: ProxyExchange): void;
  stats(): CaptureStats;
  /** Flushes and closes the file; idempotent. */
  close(): Promise<CaptureStats>;
}

/**
 * Records sampled proxy traffic to a JSONL capture (format.ts), with
 * credentials redacted as each line is written (redact.ts): nothing secret
 * reaches the disk. Writes are asynchronous; when the disk lags, entries
 * are dropped and counted rather than buffered without bound.
 *
 * @example
 *   const recorder = createCaptureRecorder({ file: 'out/capture.jsonl', sampleRate: 0.1 });
 *   const proxy = createProxy({ routes, state, onExchange: recorder.record });
 *   … await proxy.close(); await recorder.close();
 */
export function createCaptureRecorder(options: CaptureRecorderOptions): CaptureRecorder {
  if (typeof options?.file !== 'string' || options.file === '') throw invalidOption('file', options?.file, 'a file path');
  const sampleRate = options.sampleRate ?? 1;
  if (typeof sampleRate !== 'number' || !(sampleRate > 0 && sampleRate <= 1)) throw invalidOption('sampleRate', options.sampleRate, 'a number in (0, 1]');
  const maxBodyBytes = options.maxBodyBytes ?? 64 * 1024;
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 0) throw invalidOption('maxBodyBytes', options.maxBodyBytes, 'an integer >= 0');
  const maxEntries = options.maxEntries ?? Infinity;
  if (maxEntries !== Infinity && (!Number.isInteger(maxEntries) || maxEntries < 1)) throw invalidOption('maxEntries', options.maxEntries, 'a positive integer');
  const random = options.random ?? Math.random;
  const now = options.now ?? (() => new Date());

  const stats: CaptureStats = { recorded: 0, skipped: 0, dropped: 0, file: options.file };
  const out: WriteStream = createWriteStream(options.file, { flags: 'a' });
  let writable = true;
  let broken: Error | undefined;
  out.on('drain', () => (writable = true));
  out.on('error', (err) => (broken = err));
  const meta: CaptureMeta = { type: 'meta', version: 1, started_at: now().toISOString(), sample_rate: sampleRate, source: options.source ?? 'proxy' };
  out.write(JSON.stringify(meta) + '\n');
  let t0: number | undefined;
  let closed = false;
  let closing: Promise<CaptureStats> | undefined;

  function entryOf(x: ProxyExchange): CaptureEntry {
    t0 ??= x.startedAt;
    const headers = redactHeaders(x.headers);
    const entry: CaptureEntry = {
      type: 'request',
      t_ms: Math.max(0, Math.round((x.startedAt - t0) * 1000) / 1000),
      method: x.method,
      path: redactPath(x.url),
      route: x.route ?? null,
      feature: x.feature ?? null,
      headers,
      status: x.status,
      duration_ms: Math.round(x.durationMs * 1000) / 1000,
    };
    if (x.body !== undefined && x.body.length > 0) {
      if (x.body.length > maxBodyBytes) entry.body_truncated = true;
      else {
        const text = x.body.toString('utf8');
        // Bytes that are not UTF-8 survive as base64.
        if (Buffer.byteLength(text) === x.body.length && !text.includes('\uFFFD')) entry.body = redactBody(text, headers['content-type']);
        else {
          entry.body = x.body.toString('base64');
          entry.body_encoding = 'base64';
        }
      }
    }
    return entry;
  }

  return {
    record(x) {
      try {
        if (closed || broken) return;
        if (stats.recorded >= maxEntries) return;
        if (sampleRate < 1 && random() >= sampleRate) {
          stats.skipped++;
          return;
        }
        if (!writable) {
          stats.dropped++;
          return;
        }
        writable = out.write(JSON.stringify(entryOf(x)) + '\n');
        stats.recorded++;
      } catch {
        stats.dropped++;
      }
    },
    stats: () => ({ ...stats }),
    close() {
      closed = true;
      closing ??= new Promise<CaptureStats>((resolve, reject) => {
        out.end(() => (broken ? reject(broken) : resolve({ ...stats })));
      });
      return closing;
    },
  };
}
