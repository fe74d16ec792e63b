import { setTimeout as sleep } from 'node:timers/promises';
import { invalidOption } from '../../lib/errors.ts';
import { entryBody, mixKey, type CaptureEntry } from './format.ts';
import { isRedacted, restoreSecret, type TokenSource } from './redact.ts';

/** How fast to replay: the capture's own pacing scaled (`{ rate: 2 }` is twice as fast), or a fixed rate. */
export type Pacing = { rate: number } | { rps: number };

export interface ReplayOptions {
  /** Base URL the capture's paths are sent to (a proxy, or a service directly). */
  target: string;
  pacing: Pacing;
  /** Credentials for redacted headers (see restoreSecret). */
  tokens?: TokenSource;
  /** Requests in flight at once; past it the replay falls behind schedule (counted as lag). Default 256. */
  concurrency?: number;
  /** Per-request timeout, ms (default 10 s). An event stream counts as answered once its headers arrive. */
  timeoutMs?: number;
  /** Times through the capture (default 1). */
  loops?: number;
  /** Called about every `progressEveryMs` (default 1000) and once at the end. */
  onProgress?: (p: ReplayProgress) => void;
  progressEveryMs?: number;
  signal?: AbortSignal;
}

export interface ReplayProgress {
  sent: number;
  done: number;
  total: number;
  failed: number;
  elapsedS: number;
}

export interface ReplaySummary {
  target: string;
  pacing: Pacing;
  /** Requests sent and answered or failed. */
  sent: number;
  /** Transport errors, timeouts and 5xx answers. */
  failed: number;
  /** By status code; `error` for transport failures, `timeout` for timeouts. */
  status: Record<string, number>;
  latency_ms: { p50: number; p90: number; p99: number; max: number };
  duration_s: number;
  achieved_rps: number;
  /** How far behind schedule the last request started (concurrency or a slow client), ms. */
  max_lag_ms: number;
  /** Requests whose redacted credentials had no replacement (sent without the header). */
  missing_tokens: number;
  /** Per `METHOD /route`: sent and failed. */
  by_route: Record<string, { sent: number; failed: number }>;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return Math.round(sorted[i]! * 1000) / 1000;
}

/** The schedule: when (ms from the start) each request of each loop is sent. */
function schedule(entries: CaptureEntry[], pacing: Pacing, loops: number): Array<{ at: number; entry: CaptureEntry }> {
  const out: Array<{ at: number; entry: CaptureEntry }> = [];
  const span = entries.length ? entries[entries.length - 1]!.t_ms : 0;
  // One loop's length at rate 1: the capture's span plus one mean gap, so loops do not bunch up at the seam.
  const loopMs = entries.length > 1 ? span + span / (entries.length - 1) : 1000;
  for (let l = 0; l < loops; l++) {
    entries.forEach((entry, i) => {
      const at = 'rps' in pacing ? (l * entries.length + i) * (1000 / pacing.rps) : (l * loopMs + entry.t_ms) / pacing.rate;
      out.push({ at, entry });
    });
  }
  return out;
}

/**
 * Replays a capture against a target with the capture's request mix and
 * pacing (scaled), putting real tokens in place of redacted ones, and
 * summarises what happened.
 *
 * @example
 *   const { entries } = await readCapture('capture.jsonl');
 *   const summary = await replayCapture(entries, { target: 'http://127.0.0.1:8000', pacing: { rate: 2 }, tokens: { fallback: token } });
 *   summary.status['200'], summary.latency_ms.p99
 */
export async function replayCapture(entries: CaptureEntry[], options: ReplayOptions): Promise<ReplaySummary> {
  let base: URL;
  try {
    base = new URL(options.target);
  } catch {
    throw invalidOption('target', options.target, 'an http:// or https:// URL');
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw invalidOption('target', options.target, 'an http:// or https:// URL');
  const pacing = options.pacing;
  if ('rps' in pacing ? !(pacing.rps > 0) : !(pacing.rate > 0)) throw invalidOption('pacing', JSON.stringify(pacing), 'a rate > 0 or rps > 0');
  const concurrency = options.concurrency ?? 256;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw invalidOption('concurrency', options.concurrency, 'a positive integer');
  const timeoutMs = options.timeoutMs ?? 10_000;
  const loops = options.loops ?? 1;
  if (!Number.isInteger(loops) || loops < 1) throw invalidOption('loops', options.loops, 'a positive integer');
  const prefix = base.href.replace(/\/$/, '');
  const tokens = options.tokens ?? {};

  const plan = schedule(entries, pacing, loops);
  const status: Record<string, number> = {};
  const byRoute: Record<string, { sent: number; failed: number }> = {};
  const latencies: number[] = [];
  let sent = 0;
  let done = 0;
  let failed = 0;
  let missingTokens = 0;
  let maxLag = 0;
  const inFlight = new Set<Promise<void>>();
  const started = performance.now();
  const progress = () =>
    options.onProgress?.({ sent, done, total: plan.length, failed, elapsedS: Math.round((performance.now() - started) / 100) / 10 });
  const ticker = options.onProgress ? setInterval(progress, options.progressEveryMs ?? 1000) : undefined;

  async function send(entry: CaptureEntry): Promise<void> {
    const key = mixKey(entry);
    const route = (byRoute[key] ??= { sent: 0, failed: 0 });
    route.sent++;
    const headers: Record<string, string> = {};
    let missing = false;
    for (const [name, value] of Object.entries(entry.headers)) {
      if (!isRedacted(value)) headers[name] = value;
      else {
        const restored = restoreSecret(value, tokens);
        if (restored === undefined) missing = true;
        else headers[name] = restored;
      }
    }
    if (missing) missingTokens++;
    const body = entry.body_truncated ? undefined : entryBody(entry);
    const t = performance.now();
    let outcome: string;
    try {
      const res = await fetch(prefix + entry.path, {
        method: entry.method,
        headers,
        ...(body !== undefined && entry.method !== 'GET' && entry.method !== 'HEAD' ? { body: new Uint8Array(body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
        redirect: 'manual',
      });
      outcome = String(res.status);
      // A stream never ends by itself: its headers are the answer.
      if ((res.headers.get('content-type') ?? '').startsWith('text/event-stream')) await res.body?.cancel();
      else await res.arrayBuffer();
      if (res.status >= 500) {
        failed++;
        route.failed++;
      }
    } catch (err) {
      outcome = (err as Error).name === 'TimeoutError' ? 'timeout' : 'error';
      failed++;
      route.failed++;
    }
    latencies.push(performance.now() - t);
    status[outcome] = (status[outcome] ?? 0) + 1;
    done++;
  }

  try {
    for (const { at, entry } of plan) {
      if (options.signal?.aborted) break;
      const wait = at - (performance.now() - started);
      if (wait > 1) await sleep(wait, undefined, { signal: options.signal }).catch(() => {});
      while (inFlight.size >= concurrency) await Promise.race(inFlight);
      if (options.signal?.aborted) break;
      maxLag = Math.max(maxLag, performance.now() - started - at);
      sent++;
      const p: Promise<void> = send(entry).finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    await Promise.all(inFlight);
  } finally {
    clearInterval(ticker);
  }
  progress();
  const durationS = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    target: options.target,
    pacing,
    sent,
    failed,
    status,
    latency_ms: { p50: quantile(latencies, 0.5), p90: quantile(latencies, 0.9), p99: quantile(latencies, 0.99), max: quantile(latencies, 1) },
    duration_s: Math.round(durationS * 1000) / 1000,
    achieved_rps: durationS > 0 ? Math.round((sent / durationS) * 10) / 10 : 0,
    max_lag_ms: Math.round(Math.max(0, maxLag)),
    missing_tokens: missingTokens,
    by_route: byRoute,
  };
}
