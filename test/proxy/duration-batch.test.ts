import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DurationBatch } from '../../proxy/duration-batch.ts';

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The same histogram twice: one observed through prom-client, one through DurationBatch. */
function pair() {
  const plainRegistry = new Registry();
  const batchedRegistry = new Registry();
  const plain = new Histogram({ name: 'd', help: 'd', labelNames: ['feature', 'target'], buckets: BUCKETS, registers: [plainRegistry] });
  const pending = new Set<DurationBatch>();
  const batched = new Histogram({
    name: 'd',
    help: 'd',
    labelNames: ['feature', 'target'],
    buckets: BUCKETS,
    registers: [batchedRegistry],
    collect() {
      for (const b of pending) b.flush();
    },
  });
  const observers = (['legacy', 'new'] as const).map((target) => ({
    plain: plain.labels({ feature: 'f', target }),
    batched: DurationBatch.for(batched, BUCKETS, { feature: 'f', target }, pending),
  }));
  return { plainRegistry, batchedRegistry, observers };
}

/** The exposition text with each _sum rounded: the batch adds its sum at once, so the last digits may differ. */
async function text(registry: Registry): Promise<string> {
  return (await registry.metrics()).replace(/(_sum\{[^}]*\}) ([0-9.e-]+)/g, (_, name: string, v: string) => `${name} ${Number(v).toFixed(9)}`);
}

describe('DurationBatch', () => {
  it('reads the same buckets, counts and sums as observing through prom-client, bounds and overflow included', async () => {
    const { plainRegistry, batchedRegistry, observers } = pair();
    const values = [0.0001, 0.0005, 0.00051, 0.001, 0.003, 0.7, 2.5, 10, 11, 42, ...Array.from({ length: 500 }, (_, i) => (i * 7919) % 1000 / 997)];
    values.forEach((v, i) => {
      const o = observers[i % 2]!;
      o.plain.observe(v);
      o.batched.observe(v);
    });
    expect(await text(batchedRegistry)).toBe(await text(plainRegistry));
    // Read twice: a flush leaves nothing behind to add again.
    expect(await text(batchedRegistry)).toBe(await text(plainRegistry));
    observers[1]!.plain.observe(0.02);
    observers[1]!.batched.observe(0.02);
    expect(await text(batchedRegistry)).toBe(await text(plainRegistry));
  });

  it('shows no series before its first observation, and starts again after a registry reset', async () => {
    const { plainRegistry, batchedRegistry, observers } = pair();
    expect(await text(batchedRegistry)).toBe(await text(plainRegistry));
    observers[0]!.plain.observe(0.004);
    observers[0]!.batched.observe(0.004);
    expect(await text(batchedRegistry)).toBe(await text(plainRegistry));
    plainRegistry.resetMetrics();
    batchedRegistry.resetMetrics();
    for (const v of [0.2, 0.0002]) {
      observers[0]!.plain.observe(v);
      observers[0]!.batched.observe(v);
    }
    expect(await text(batchedRegistry)).toBe(await text(plainRegistry));
  });

  it('refuses a value that is not a finite number as prom-client does', () => {
    const { observers } = pair();
    expect(() => observers[0]!.batched.observe(Number.NaN)).toThrow(TypeError);
  });
});
