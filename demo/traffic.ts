import { createRandom } from '../stack/seed/prng.ts';

export interface TrafficOptions {
  cloudUrl: string;
  /** Customers the driver may act as, with their bearer tokens. */
  customers: Array<{ id: number; token: string }>;
  /** Existing droplets (id, owner) that actions and deletes may target. */
  droplets: Array<{ id: number; customer_id: number }>;
  regions: string[];
  sizes: string[];
  images: string[];
  /** Requests per second. */
  rate: number;
  /** Share of creates, actions, deletes and action reads (they need not sum to 1; reads default to 0). */
  mix?: { create: number; action: number; destroy: number; read?: number };
  maxInFlight?: number;
  requestTimeoutMs?: number;
  seed?: number;
}

export interface TrafficStats {
  sent: number;
  byKind: Record<string, number>;
  byStatus: Record<string, number>;
  /** Requests that failed at the transport level or with a 5xx. */
  failed: number;
  /** Event ids of every accepted create (from the response's action links). */
  createdEventIds: number[];
  /** Milliseconds of every answered request (any status): Cloud's latency as its customers see it. */
  latenciesMs: number[];
}

/**
 * Drives customer traffic at Cloud at a steady rate: droplet creates,
 * reboot/power actions and deletes, acting as seeded customers.
 *
 * @example
 *   const traffic = startTraffic({ cloudUrl, customers, droplets, regions: ['nyc1'], sizes: ['1gb'], images: ['debian-8-x64'], rate: 20 });
 *   … const stats = await traffic.stop();
 */
export function startTraffic(options: TrafficOptions) {
  const rand = createRandom(options.seed ?? 1);
  const mix = options.mix ?? { create: 0.7, action: 0.25, destroy: 0.05 };
  const readWeight = mix.read ?? 0;
  const totalWeight = mix.create + mix.action + mix.destroy + readWeight;
  /** Recent actions this driver was answered with, and whose they are: what a customer polls afterwards. */
  const recent: Array<{ id: number; token: string }> = [];
  const maxInFlight = options.maxInFlight ?? 64;
  const droplets = [...options.droplets];
  const tokenOf = new Map(options.customers.map((c) => [c.id, c.token]));
  const stats: TrafficStats = { sent: 0, byKind: {}, byStatus: {}, failed: 0, createdEventIds: [], latenciesMs: [] };
  const inFlight = new Set<Promise<void>>();
  let credit = 0;
  let nameSeq = 0;

  async function send(kind: string, path: string, token: string, method: string, body?: unknown): Promise<void> {
    stats.sent++;
    stats.byKind[kind] = (stats.byKind[kind] ?? 0) + 1;
    const started = performance.now();
    try {
      const res = await fetch(options.cloudUrl + path, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
        // A saturated legacy database stalls requests for minutes; the driver counts them as failed instead.
        signal: AbortSignal.timeout(options.requestTimeoutMs ?? 15_000),
      });
      const text = await res.text();
      stats.latenciesMs.push(performance.now() - started);
      stats.byStatus[res.status] = (stats.byStatus[res.status] ?? 0) + 1;
      if (res.status >= 500) stats.failed++;
      if (kind === 'create' && res.status === 202) {
        const parsed = JSON.parse(text) as { links?: { actions?: Array<{ id: number }> } };
        const id = parsed.links?.actions?.[0]?.id;
        if (id) {
          stats.createdEventIds.push(id);
          remember(id, token);
        }
      } else if (kind === 'action' && (res.status === 201 || res.status === 200)) {
        const id = (JSON.parse(text) as { action?: { id?: number } }).action?.id;
        if (id) remember(id, token);
      }
    } catch (err) {
      stats.failed++;
      const key = (err as Error).name === 'TimeoutError' ? 'timeout' : 'transport';
      stats.byStatus[key] = (stats.byStatus[key] ?? 0) + 1;
    }
  }

  function remember(id: number, token: string): void {
    recent.push({ id, token });
    if (recent.length > 500) recent.splice(0, recent.length - 500);
  }

  function next(): Promise<void> {
    const r = rand.next() * totalWeight;
    // A customer following up on an action it was given (GET /v2/actions/:id): the reads event-reads moves.
    const reading = r >= mix.create + mix.action + mix.destroy;
    if (reading && recent.length > 0) {
      const a = rand.pick(recent);
      return send('read', `/v2/actions/${a.id}`, a.token, 'GET');
    }
    if (reading || r < mix.create || droplets.length === 0) {
      const customer = rand.pick(options.customers);
      return send('create', '/v2/droplets', customer.token, 'POST', {
        name: `demo-${++nameSeq}.example.com`,
        region: rand.pick(options.regions),
        size: rand.pick(options.sizes),
        image: rand.pick(options.images),
      });
    }
    if (r < mix.create + mix.action) {
      const d = rand.pick(droplets);
      const type = rand.pick(['reboot', 'power_off', 'power_on'] as const);
      return send('action', `/v2/droplets/${d.id}/actions`, tokenOf.get(d.customer_id)!, 'POST', { type });
    }
    const index = rand.int(0, droplets.length - 1);
    const [d] = droplets.splice(index, 1);
    return send('destroy', `/v2/droplets/${d!.id}`, tokenOf.get(d!.customer_id)!, 'DELETE');
  }

  const tickMs = 50;
  const timer = setInterval(() => {
    credit += (options.rate * tickMs) / 1000;
    while (credit >= 1 && inFlight.size < maxInFlight) {
      credit -= 1;
      const p = next().finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    // Under back-pressure, do not bank unbounded credit: a burst after a stall is not the traffic asked for.
    credit = Math.min(credit, options.rate);
  }, tickMs);

  return {
    stats: () => stats,
    async stop(): Promise<TrafficStats> {
      clearInterval(timer);
      await Promise.all(inFlight);
      return stats;
    },
  };
}
