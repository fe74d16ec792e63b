import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { goesNew, sha256, stickyBucket } from '../../../lib/cutover/decide.ts';
import type { Routing } from '../../../lib/cutover/types.ts';

const canary = (percent: number, regions: string[] | null = null): Routing => ({ mode: 'canary', percent, regions });
const keys = Array.from({ length: 2000 }, (_, i) => `hv-${i}`);

/** A key whose bucket in `feature` is exactly `bucket` (found by search: the proxy and the agents must agree on the edge). */
function keyAt(feature: string, bucket: number): string {
  for (let i = 0; i < 200_000; i++) if (stickyBucket(feature, `k${i}`) === bucket) return `k${i}`;
  throw new Error(`no key lands in bucket ${bucket}`);
}

describe('the cutover decision (lib/cutover/decide.ts)', () => {
  it('sha256 is SHA-256 on every Node', () => {
    expect(sha256('hv-17').equals(createHash('sha256').update('hv-17').digest())).toBe(true);
  });

  it('buckets are pinned: a key keeps its bucket across releases, so a live canary never moves a host back', () => {
    // Changing the bucket function mid-canary would move hosts between paths: these values must not change.
    expect(stickyBucket('event-delivery', 'hv-17')).toBe(PINNED['event-delivery/hv-17']);
    expect(stickyBucket('scheduling', 'hv-17')).toBe(PINNED['scheduling/hv-17']);
    expect(stickyBucket('event-delivery', 'hv-18')).toBe(PINNED['event-delivery/hv-18']);
    for (const k of keys) {
      const b = stickyBucket('event-delivery', k);
      expect(b).toBeGreaterThanOrEqual(0);
      expect(b).toBeLessThan(100);
      expect(Math.abs(Math.round(b * 100) - b * 100)).toBeLessThan(1e-6);
    }
  });

  it('legacy and shadow send nothing new, full sends everything', () => {
    for (const k of keys.slice(0, 50)) {
      expect(goesNew('event-delivery', { mode: 'legacy', percent: 100, regions: null }, { key: k })).toBe(false);
      expect(goesNew('event-delivery', { mode: 'shadow', percent: 100, regions: null }, { key: k })).toBe(false);
      expect(goesNew('event-delivery', { mode: 'full', percent: 0, regions: ['nowhere'] }, { key: k, region: 'nyc1' })).toBe(true);
    }
  });

  it('a canary sends about its percent, only widens as it rises, and 0 % / 100 % are exact', () => {
    const share = (p: number) => keys.filter((k) => goesNew('event-delivery', canary(p), { key: k })).length / keys.length;
    expect(share(0)).toBe(0);
    expect(share(100)).toBe(1);
    expect(share(25)).toBeGreaterThan(0.2);
    expect(share(25)).toBeLessThan(0.3);
    for (const k of keys) {
      if (goesNew('event-delivery', canary(10), { key: k })) expect(goesNew('event-delivery', canary(25), { key: k })).toBe(true);
    }
    // The edge: a key in bucket 25.00 is not in a 25 % canary, one in bucket 0 is in a 0.01 % canary but not a 0 % one.
    expect(goesNew('event-delivery', canary(25), { key: keyAt('event-delivery', 25) })).toBe(false);
    expect(goesNew('event-delivery', canary(25.01), { key: keyAt('event-delivery', 25) })).toBe(true);
    expect(goesNew('event-delivery', canary(0), { key: keyAt('event-delivery', 0) })).toBe(false);
    expect(goesNew('event-delivery', canary(0.01), { key: keyAt('event-delivery', 0) })).toBe(true);
  });

  it('features bucket independently', () => {
    const differ = keys.filter((k) => stickyBucket('event-delivery', k) !== stickyBucket('scheduling', k)).length;
    expect(differ).toBeGreaterThan(keys.length * 0.9);
  });

  it('a canary limited to regions leaves other regions, and subjects without a region, on the old path', () => {
    const all = keys.slice(0, 50);
    expect(all.every((k) => goesNew('event-delivery', canary(100, ['nyc1']), { key: k, region: 'nyc1' }))).toBe(true);
    expect(all.some((k) => goesNew('event-delivery', canary(100, ['nyc1']), { key: k, region: 'ams3' }))).toBe(false);
    expect(all.some((k) => goesNew('event-delivery', canary(100, ['nyc1']), { key: k }))).toBe(false);
    expect(all.every((k) => goesNew('event-delivery', canary(100, []), { key: k, region: 'nyc1' }))).toBe(false);
  });
});

const PINNED: Record<string, number> = { 'event-delivery/hv-17': 64.25, 'scheduling/hv-17': 89.95, 'event-delivery/hv-18': 11.41 };
