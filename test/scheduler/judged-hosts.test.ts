import { describe, expect, it } from 'vitest';
import { createRandom } from '../../stack/seed/prng.ts';
import { FILTERS, type FilterContext, type HostCandidate, type SizeSpec } from '../../scheduler/filters.ts';
import { JudgedHosts } from '../../scheduler/judged-hosts.ts';
import { rankHosts, type RankOptions } from '../../scheduler/rank.ts';

const SIZES: SizeSpec[] = [
  { slug: 'tiny', memory: 256, vcpus: 1, disk: 10 },
  { slug: '2gb', memory: 2048, vcpus: 2, disk: 40 },
  { slug: '16gb', memory: 16384, vcpus: 8, disk: 160 },
  { slug: 'huge', memory: 262144, vcpus: 64, disk: 4000 },
];
const OPTIONS: RankOptions = { filters: FILTERS, policy: 'v1-compatible', overcommit: 4, maxStalenessMs: 10_000 };

function randomHosts(rand: ReturnType<typeof createRandom>, n: number): HostCandidate[] {
  return Array.from({ length: n }, (_, i) => {
    const cpus = rand.pick([1, 8, 24, 40]);
    return {
      id: i + 1,
      name: `hv-${i + 1}`,
      region_id: rand.chance(0.9) ? 1 : 2,
      memory: 131072,
      disk: 1920,
      allocatable_memory: 129024,
      allocatable_disk: 1870,
      cpus,
      vmcount: rand.chance(0.15) ? rand.int(cpus * 4 - 2, 140) : rand.int(0, 60),
      memfree: rand.chance(0.3) ? rand.int(0, 4096) : rand.int(0, 129024),
      diskfree_actual: rand.chance(0.2) ? rand.int(0, 100) : rand.int(0, 1870),
      error_count: rand.chance(0.15) ? rand.int(4, 9) : rand.int(0, 3),
      state: rand.chance(0.08) ? 'maintenance' : '',
      busy: rand.chance(0.3) ? { [rand.pick(['create', 'restore', 'pdu_reboot'] as const)]: rand.int(1, 99) } : {},
      metrics_age_ms: rand.chance(0.05) ? undefined : rand.chance(0.05) ? 60_000 : 100,
    };
  });
}

describe('JudgedHosts: the host-only filters judged once per round', () => {
  it('only filters marked usesSize depend on the size', () => {
    const rand = createRandom(7);
    for (const host of randomHosts(rand, 400)) {
      for (const f of FILTERS.filter((x) => !x.usesSize)) {
        const verdicts = SIZES.map((size) => f.test({ host, size, overage: host.cpus * 4, maxStalenessMs: 10_000 } satisfies FilterContext));
        expect(new Set(verdicts).size, `${f.id} on ${host.name}`).toBe(1);
      }
    }
  });

  it('a round of events against one judged view ranks as fresh candidates would, bookings included', () => {
    const rand = createRandom(11);
    for (let world = 0; world < 60; world++) {
      let hosts = randomHosts(rand, rand.int(1, 40));
      const judged = new JudgedHosts(hosts, OPTIONS);
      for (let event = 0; event < 15; event++) {
        const size = rand.pick(SIZES);
        const options: RankOptions = { ...OPTIONS, top: rand.pick([1, 4, undefined]), verdicts: rand.chance(0.5) };
        const user = new Map(hosts.filter(() => rand.chance(0.2)).map((h) => [h.id, 1]));
        const viaJudged = rankHosts(judged, { region_id: 1, size }, { ...options, userDroplets: user });
        const viaList = rankHosts(hosts, { region_id: 1, size }, { ...options, userDroplets: user });
        expect(viaJudged).toEqual(viaList);
        const chosen = viaJudged.ranked[0]?.host;
        if (!chosen) continue;
        // Book it, as a round does: the host is now busy creating and has less room.
        const booked: HostCandidate = { ...chosen, memfree: chosen.memfree - size.memory, vmcount: chosen.vmcount + 1, busy: { ...chosen.busy, create: 1000 + event } };
        hosts = hosts.map((h) => (h.id === booked.id ? booked : h));
        expect(judged.replace(booked)).toBe(true);
      }
    }
  });

  it('re-judges when asked to rank with other options', () => {
    const host = randomHosts(createRandom(3), 1)[0]!;
    const stale = { ...host, region_id: 1, metrics_age_ms: 20_000, error_count: 0, state: '', busy: {} };
    const judged = new JudgedHosts([stale], OPTIONS);
    expect(rankHosts(judged, { region_id: 1, size: SIZES[0]! }, { ...OPTIONS, verdicts: true }).verdicts![0]!.filter).toBe('metrics-stale');
    expect(rankHosts(judged, { region_id: 1, size: SIZES[0]! }, { ...OPTIONS, maxStalenessMs: 60_000, verdicts: true }).verdicts![0]!.filter).not.toBe('metrics-stale');
  });
});
