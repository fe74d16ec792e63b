import crypto from 'node:crypto';
import type { Routing } from './types.ts';

/**
 * SHA-256 in one call: `crypto.hash` (Node >= 20.12) skips the Hash object
 * and is about twice as fast on keys this short; older Nodes get the same
 * digest from createHash. The proxy buckets every canary request with it.
 */
export const sha256: (data: string) => Buffer =
  typeof crypto.hash === 'function' ? (data) => crypto.hash('sha256', data, 'buffer') : (data) => crypto.createHash('sha256').update(data).digest();

/**
 * A key's sticky bucket in [0, 100): the same key always lands in the same
 * bucket for a feature, so raising a canary from 10% to 25% only adds keys
 * and never moves one back. Different features bucket independently.
 */
export function stickyBucket(feature: string, key: string): number {
  const digest = sha256(`${feature}\u0000${key}`);
  return (digest.readUInt32BE(0) % 10_000) / 100;
}

/**
 * Whether a request (or a hypervisor) belongs on the new path. Shared by the
 * proxy and the agents so both sides of a live switch agree.
 *
 * @example
 *   goesNew('event-delivery', { mode: 'canary', percent: 25, regions: ['nyc1'] }, { key: 'hv-17', region: 'nyc1' })
 */
export function goesNew(feature: string, routing: Routing, subject: { key: string; region?: string }): boolean {
  switch (routing.mode) {
    case 'legacy':
    case 'shadow':
      return false;
    case 'full':
      return true;
    case 'canary':
      if (routing.regions && !(subject.region && routing.regions.includes(subject.region))) return false;
      return stickyBucket(feature, subject.key) < routing.percent;
  }
}
