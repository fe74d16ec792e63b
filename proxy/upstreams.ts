import { Agent, request as httpRequest } from 'node:http';
import type { Gauge } from 'prom-client';
import type { Logger } from '../lib/logger.ts';

/** Errors where a request never reached the instance: it leaves the rotation at once (live traffic and health checks alike). */
export const CONNECT_FAILURES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'PROXY_CONNECT_TIMEOUT']);

export interface HealthCheckOptions {
  /** Path requested on every instance (relative to its base URL). */
  path: string;
  intervalMs: number;
  /** A check that has not answered 2xx within this time fails. */
  timeoutMs: number;
  /** Consecutive failed checks that take an instance out of the rotation. */
  unhealthyThreshold: number;
  /** Consecutive passed checks that bring it back. */
  healthyThreshold: number;
}

export interface AgentOptions {
  /** Sockets per upstream instance; Infinity by default (every SSE stream holds one). */
  maxSockets: number;
  /** Idle keep-alive sockets kept per upstream instance. */
  maxFreeSockets: number;
  keepAliveMsecs: number;
}

/**
 * One upstream instance (a base URL): its keep-alive agent and its health.
 * The same URL named by several routes or features is one instance.
 */
export class Upstream {
  readonly url: string;
  /** The metrics label: host:port plus any base path. */
  readonly label: string;
  readonly agent: Agent;
  readonly hostname: string;
  readonly port: number;
  /** The base path requests are prefixed with ('' for none). */
  readonly basePath: string;
  healthy = true;
  /** The pool's own health-check path (a target's `healthPath`), else the proxy's. */
  healthPath: string | undefined;
  private failures = 0;
  private successes = 0;
  private checking = false;
  private readonly memberships: Array<{ feature: string; target: string }> = [];

  constructor(
    url: URL,
    agentOptions: AgentOptions,
    private readonly gauge: Gauge<'feature' | 'target' | 'instance'>,
    private readonly log: Logger,
  ) {
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.url = `${url.origin}${this.basePath}`;
    this.label = `${url.host}${this.basePath}`;
    this.hostname = url.hostname;
    this.port = Number(url.port || 80);
    this.agent = new Agent({
      keepAlive: true,
      keepAliveMsecs: agentOptions.keepAliveMsecs,
      maxSockets: agentOptions.maxSockets,
      maxFreeSockets: agentOptions.maxFreeSockets,
      scheduling: 'lifo',
    });
  }

  /** The pools (feature and side) this instance serves. */
  pools(): ReadonlyArray<{ feature: string; target: string }> {
    return this.memberships;
  }

  addMembership(feature: string, target: string): void {
    if (this.memberships.some((m) => m.feature === feature && m.target === target)) return;
    this.memberships.push({ feature, target });
    this.gauge.set({ feature, target, instance: this.label }, this.healthy ? 1 : 0);
  }

  private setHealthy(healthy: boolean, why: string): void {
    if (healthy === this.healthy) return;
    this.healthy = healthy;
    for (const m of this.memberships) this.gauge.set({ ...m, instance: this.label }, healthy ? 1 : 0);
    if (healthy) this.log.info({ instance: this.label }, 'upstream instance back in rotation');
    else this.log.warn({ instance: this.label, why }, 'upstream instance left the rotation');
  }

  /** A passive signal from live traffic (connection refused, connect timeout): out of the rotation at once. */
  markDown(why: string, threshold: number): void {
    this.successes = 0;
    this.failures = Math.max(this.failures, threshold);
    this.setHealthy(false, why);
  }

  /** One active health check: GET <base><path>, 2xx within the timeout passes. */
  async check(options: HealthCheckOptions): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      let refused: string | undefined;
      const ok = await new Promise<boolean>((resolve) => {
        const req = httpRequest(
          {
            hostname: this.hostname,
            port: this.port,
            path: `${this.basePath}${this.healthPath ?? options.path}`,
            method: 'GET',
            agent: false,
            headers: { 'user-agent': 'strangler-proxy-healthcheck', connection: 'close' },
          },
          (res) => {
            resolve(res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300);
            // The status is all a check needs; a body that streams (or never ends) must not hold the socket.
            res.destroy();
          },
        );
        const timer = setTimeout(() => req.destroy(new Error('health check timed out')), options.timeoutMs);
        req.on('close', () => clearTimeout(timer));
        req.on('error', (err: NodeJS.ErrnoException) => {
          if (err.code && CONNECT_FAILURES.has(err.code)) refused = err.code;
          resolve(false);
        });
        req.end();
      });
      if (refused) {
        // Nothing listens there (or the name does not resolve): as with live traffic, out at once. A
        // config naming an unreachable target so starts with it out of its pool, and /readyz names it.
        this.markDown(refused, options.unhealthyThreshold);
      } else if (ok) {
        this.failures = 0;
        this.successes++;
        if (!this.healthy && this.successes >= options.healthyThreshold) this.setHealthy(true, 'health check passed');
      } else {
        this.successes = 0;
        this.failures++;
        if (this.healthy && this.failures >= options.unhealthyThreshold) this.setHealthy(false, `${this.failures} failed health checks`);
      }
    } finally {
      this.checking = false;
    }
  }

  destroy(): void {
    this.agent.destroy();
  }
}

/** A target's pool for one feature (and region): round robin over healthy instances. */
export class Pool {
  private next = 0;
  constructor(
    readonly feature: string,
    readonly target: 'legacy' | 'new',
    readonly instances: Upstream[],
  ) {
    for (const u of instances) u.addMembership(feature, target);
  }

  /** The next healthy instance not in `exclude`, or undefined when none is left. */
  pick(exclude?: ReadonlySet<Upstream>): Upstream | undefined {
    const n = this.instances.length;
    for (let i = 0; i < n; i++) {
      const u = this.instances[(this.next + i) % n]!;
      if (u.healthy && !exclude?.has(u)) {
        this.next = (this.next + i + 1) % n;
        return u;
      }
    }
    return undefined;
  }

  /**
   * Panic routing: the next instance not in `exclude`, healthy or not. For a pool whose every
   * instance fails its checks at once — a correlated cause such as a saturated database behind
   * all of them — where refusing every request would turn "slow" into "down".
   */
  pickAny(exclude?: ReadonlySet<Upstream>): Upstream | undefined {
    const n = this.instances.length;
    for (let i = 0; i < n; i++) {
      const u = this.instances[(this.next + i) % n]!;
      if (!exclude?.has(u)) {
        this.next = (this.next + i + 1) % n;
        return u;
      }
    }
    return undefined;
  }
}

/** Every upstream instance of a proxy, deduplicated by URL, and the timer that checks them. */
export class UpstreamSet {
  private readonly byUrl = new Map<string, Upstream>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly agentOptions: AgentOptions,
    readonly health: HealthCheckOptions,
    private readonly gauge: Gauge<'feature' | 'target' | 'instance'>,
    private readonly log: Logger,
  ) {}

  /** The instance for `url`, created once; a `healthPath` differing from the one it already has returns undefined (the caller names the conflict). */
  get(url: URL, healthPath?: string): Upstream | undefined {
    const key = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
    let u = this.byUrl.get(key);
    if (!u) {
      u = new Upstream(url, this.agentOptions, this.gauge, this.log);
      u.healthPath = healthPath;
      this.byUrl.set(key, u);
    } else if (u.healthPath !== healthPath) {
      return undefined;
    }
    return u;
  }

  all(): Upstream[] {
    return [...this.byUrl.values()];
  }

  checkAll(): Promise<void> {
    return Promise.all(this.all().map((u) => u.check(this.health))).then(() => undefined);
  }

  /** Runs one round now (so the first answers already know who is down), then every intervalMs. */
  async start(): Promise<void> {
    await this.checkAll();
    this.timer = setInterval(() => void this.checkAll(), this.health.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const u of this.byUrl.values()) u.destroy();
  }
}
