/**
 * What the stream benches (bench/harpoon.ts, bench/router-harpoon.ts)
 * share: child processes holding streams that answer `status` and
 * `report` over IPC, a writer posting events to Harpoon at a steady rate
 * (each carrying its send time in `args.t0`), and quantiles.
 */
import type { ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { parsePromText } from '../lib/metrics/prom-text.ts';

export interface StreamCounts {
  connected: number;
  failed: number;
}

/**
 * Holds one SSE stream (its own socket) and calls `onFrames` with every run
 * of complete frames as it arrives, and the time it was read.
 */
export function holdStream(url: string, headers: Record<string, string>, counts: StreamCounts, onFrames: (complete: string, now: number) => void): void {
  const req = request(url, { agent: false, headers: { accept: 'text/event-stream', ...headers } });
  req.on('error', () => counts.failed++);
  req.on('response', (res) => {
    if (res.statusCode !== 200) {
      counts.failed++;
      res.resume();
      return;
    }
    counts.connected++;
    res.setEncoding('utf8');
    let tail = '';
    res.on('data', (chunk: string) => {
      const now = Date.now();
      const text = tail + chunk;
      const cut = text.lastIndexOf('\n\n');
      if (cut === -1) {
        tail = text;
        return;
      }
      tail = text.slice(cut + 2);
      onFrames(text.slice(0, cut), now);
    });
    res.on('close', () => counts.connected--);
  });
  req.end();
}

export function quantile(sorted: number[], q: number): number | null {
  return sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** One IPC question to a stream-holding child, answered by its next message. */
export function askChild<T>(child: ChildProcess, cmd: string): Promise<T> {
  return new Promise<T>((resolve) => {
    child.once('message', (m) => resolve(m as T));
    child.send({ cmd });
  });
}

/** Waits until the children's streams are all connected or failed (or the timeout); returns how many connected and how long it took. */
export async function waitForStreams(children: ChildProcess[], total: number, timeoutMs: number): Promise<{ connected: number; seconds: number }> {
  const start = Date.now();
  let connected = 0;
  for (;;) {
    const st = await Promise.all(children.map((c) => askChild<{ connected: number; failed: number }>(c, 'status')));
    connected = st.reduce((s, x) => s + x.connected, 0);
    const failed = st.reduce((s, x) => s + x.failed, 0);
    if (connected + failed >= total || Date.now() - start > timeoutMs) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  return { connected, seconds: (Date.now() - start) / 1000 };
}

/**
 * POSTs `rate × seconds` events to Harpoon, one every 1/rate s, round-robin
 * over `urls`; `event(i)` gives the i-th body (its `args.t0` is set here,
 * just before the request). Resolves once every write was answered 201.
 */
export async function writeEventsPaced(options: {
  urls: string[];
  token: string;
  rate: number;
  seconds: number;
  event(i: number): Record<string, unknown>;
}): Promise<number> {
  const writer = new Agent({ keepAlive: true, maxSockets: 16 });
  const total = options.rate * options.seconds;
  const pending: Array<Promise<void>> = [];
  const t0 = Date.now();
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / options.rate;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const body = JSON.stringify({ ...options.event(i), args: { t0: Date.now() } });
    const url = `${options.urls[i % options.urls.length]}/v1/events`;
    const post = (): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        const req = request(url, {
          method: 'POST',
          agent: writer,
          headers: { authorization: `Bearer ${options.token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        });
        req.on('error', (err: NodeJS.ErrnoException) => {
          // A keep-alive socket the server closed as this request went out: nothing was processed, send it again.
          if (req.reusedSocket && err.code === 'ECONNRESET') post().then(resolve, reject);
          else reject(err);
        });
        req.on('response', (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`write answered ${res.statusCode}`))));
        });
        req.end(body);
      });
    pending.push(post());
  }
  try {
    await Promise.all(pending);
  } finally {
    writer.destroy();
  }
  return total;
}

/** A histogram's buckets (le → cumulative count) from a service's /metrics, summed over several services. */
export async function histogramBuckets(urls: string | string[], name: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const url of Array.isArray(urls) ? urls : [urls]) {
    const text = await (await fetch(`${url}/metrics`)).text();
    for (const s of parsePromText(text).samples) {
      if (s.name === `${name}_bucket` && s.labels.le !== undefined) out.set(s.labels.le, (out.get(s.labels.le) ?? 0) + s.value);
    }
  }
  return out;
}

/** The bucket bound (ms) under which quantile q of the observations between two readings fell. */
export function bucketQuantile(before: Map<string, number>, after: Map<string, number>, q: number): number | null {
  const total = (after.get('+Inf') ?? 0) - (before.get('+Inf') ?? 0);
  if (total <= 0) return null;
  for (const [le, n] of after) if (n - (before.get(le) ?? 0) >= q * total) return le === '+Inf' ? Infinity : Number(le) * 1000;
  return null;
}
