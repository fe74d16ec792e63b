import { request as httpRequest, type ClientRequest, type IncomingHttpHeaders } from 'node:http';
import type { Counter } from 'prom-client';
import type { Logger } from '../lib/logger.ts';
import { compareResponses, type ComparedResponse, type CompiledRules } from './compare.ts';
import type { Upstream } from './upstreams.ts';

export interface ShadowSampleSide {
  status: number;
  /** The body as text, cut to `sampleBodyBytes`. */
  body: string;
  truncated: boolean;
}

/** One shadowed request whose two answers disagreed (or whose copy failed). */
export interface ShadowSample {
  at: string;
  feature: string;
  route: string;
  method: string;
  /** The request path without its query string (queries may carry secrets). */
  path: string;
  requestId: string;
  result: 'mismatch' | 'error';
  /** Where the answers differ (`status 200 vs 500`, `$.droplet.name`), or why the copy failed. */
  differences: string[];
  legacy: ShadowSampleSide;
  new: ShadowSampleSide | { error: string };
}

export interface ShadowSettings {
  /** Mismatches kept for inspection (a ring buffer: the oldest goes first). */
  samples: number;
  /** Each body in a sample is cut to this many bytes. */
  sampleBodyBytes: number;
  /** Answers larger than this are not compared (counted as result="error"). */
  maxCompareBytes: number;
  /** The copy's own deadline; a late copy counts as result="error" and never delays the client. */
  timeoutMs: number;
  /** Copies in flight at once; beyond it requests are not shadowed (proxy_shadow_skipped_total). */
  maxInFlight: number;
}

/** A bounded ring of the latest samples. */
export class SampleRing {
  private readonly items: ShadowSample[] = [];
  private start = 0;
  constructor(private readonly capacity: number) {}

  push(sample: ShadowSample): void {
    if (this.capacity === 0) return;
    if (this.items.length < this.capacity) this.items.push(sample);
    else {
      this.items[this.start] = sample;
      this.start = (this.start + 1) % this.capacity;
    }
  }

  /** Oldest first. */
  list(): ShadowSample[] {
    return [...this.items.slice(this.start), ...this.items.slice(0, this.start)];
  }

  clear(): void {
    this.items.length = 0;
    this.start = 0;
  }
}

export function sampleSide(status: number, body: Buffer, limit: number): ShadowSampleSide {
  const truncated = body.length > limit;
  return { status, body: (truncated ? body.subarray(0, limit) : body).toString('utf8'), truncated };
}

/** Headers never copied to the shadow request: hop-by-hop, and the length (recomputed from the body). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'content-length', 'host', 'expect']);

export interface ShadowJob {
  feature: string;
  route: string;
  method: string;
  /** Path and query, as forwarded. */
  url: string;
  requestId: string;
  headers: IncomingHttpHeaders;
  body: Buffer | undefined;
  legacy: ComparedResponse;
  rules: CompiledRules;
  /** The new side's instance, or undefined when none is healthy. */
  instance: Upstream | undefined;
}

export interface ShadowMetrics {
  comparisons: Counter<'feature' | 'route' | 'result'>;
  skipped: Counter<'feature' | 'route' | 'reason'>;
}

/**
 * Sends copies to the new side and compares the answers. Runs after the
 * client has its answer, so it can neither change nor slow it; its failures
 * are only counted and sampled.
 */
export class Shadower {
  readonly ring: SampleRing;
  private inFlight = 0;
  private readonly open = new Set<ClientRequest>();

  constructor(
    readonly settings: ShadowSettings,
    private readonly metrics: ShadowMetrics,
    private readonly log: Logger,
    private readonly onSample: ((sample: ShadowSample) => void) | undefined,
  ) {
    this.ring = new SampleRing(settings.samples);
  }

  /** Whether another copy may start now; counts the skip when not. */
  admit(feature: string, route: string): boolean {
    if (this.inFlight < this.settings.maxInFlight) return true;
    this.metrics.skipped.inc({ feature, route, reason: 'overload' });
    return false;
  }

  skip(feature: string, route: string, reason: string): void {
    this.metrics.skipped.inc({ feature, route, reason });
  }

  run(job: ShadowJob): void {
    this.inFlight++;
    void this.send(job)
      .then((answer) => this.finish(job, answer))
      .catch((err: Error) => this.finish(job, { error: err.message }))
      .finally(() => {
        this.inFlight--;
      });
  }

  private send(job: ShadowJob): Promise<ComparedResponse> {
    const { instance } = job;
    if (!instance) return Promise.reject(new Error('no healthy instance on the new side'));
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(job.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
    headers['x-request-id'] = job.requestId;
    headers['x-strangler-shadow'] = '1';
    headers.host = `${instance.hostname}:${instance.port}`;
    if (job.body) headers['content-length'] = String(job.body.length);
    return new Promise((resolve, reject) => {
      const req = httpRequest({
        hostname: instance.hostname,
        port: instance.port,
        method: job.method,
        path: `${instance.basePath}${job.url}`,
        headers,
        agent: instance.agent,
      });
      this.open.add(req);
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${this.settings.timeoutMs} ms`)), this.settings.timeoutMs);
      req.on('close', () => {
        clearTimeout(timer);
        this.open.delete(req);
      });
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > this.settings.maxCompareBytes) {
            req.destroy(new Error(`the new side's answer is over ${this.settings.maxCompareBytes} bytes; not compared`));
            return;
          }
          chunks.push(c);
        });
        res.on('error', reject);
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks) }),
        );
      });
      req.end(job.body);
    });
  }

  private finish(job: ShadowJob, answer: ComparedResponse | { error: string }): void {
    const labels = { feature: job.feature, route: job.route };
    const path = job.url.split('?')[0]!;
    const limit = this.settings.sampleBodyBytes;
    if ('error' in answer) {
      this.metrics.comparisons.inc({ ...labels, result: 'error' });
      this.record({
        at: new Date().toISOString(),
        ...labels,
        method: job.method,
        path,
        requestId: job.requestId,
        result: 'error',
        differences: [answer.error],
        legacy: sampleSide(job.legacy.status, job.legacy.body, limit),
        new: { error: answer.error },
      });
      return;
    }
    let cmp;
    try {
      cmp = compareResponses(job.legacy, answer, job.rules);
    } catch (err) {
      this.log.error({ err, requestId: job.requestId }, 'shadow comparison failed');
      this.metrics.comparisons.inc({ ...labels, result: 'error' });
      return;
    }
    this.metrics.comparisons.inc({ ...labels, result: cmp.equal ? 'match' : 'mismatch' });
    if (cmp.equal) return;
    this.log.debug({ requestId: job.requestId, ...labels, differences: cmp.differences }, 'shadow mismatch');
    this.record({
      at: new Date().toISOString(),
      ...labels,
      method: job.method,
      path,
      requestId: job.requestId,
      result: 'mismatch',
      differences: cmp.differences,
      legacy: sampleSide(job.legacy.status, job.legacy.body, limit),
      new: sampleSide(answer.status, answer.body, limit),
    });
  }

  private record(sample: ShadowSample): void {
    this.ring.push(sample);
    try {
      this.onSample?.(sample);
    } catch (err) {
      this.log.warn({ err }, 'onShadowSample callback failed');
    }
  }

  /** Copies in flight right now. */
  get pending(): number {
    return this.inFlight;
  }

  /** Abandons every copy in flight (on close). */
  abort(): void {
    for (const req of this.open) req.destroy(new Error('proxy closing'));
  }
}
