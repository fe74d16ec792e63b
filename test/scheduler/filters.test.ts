import { describe, expect, it } from 'vitest';
import { createRandom } from '../../stack/seed/prng.ts';
import { rankV1, V1_BUSY_TYPES, type V1BusyList, type V1Server, type V1SkipRule } from '../../legacy/scheduler-v1/rank.ts';
import { formatRejections, summarize } from '../../scheduler/explain.ts';
import { FILTER_IDS, FILTERS, selectFilters, type FilterId, type HostCandidate, type SizeSpec } from '../../scheduler/filters.ts';
import { formatHostMetrics, hostMetricsFromSamples, type HostMetrics } from '../../lib/metrics/host-metrics.ts';
import { parseExplainInput } from '../../scheduler/http.ts';
import { parsePromText } from '../../lib/metrics/prom-text.ts';
import { rankHosts, type RankOptions } from '../../scheduler/rank.ts';

const SIZE: SizeSpec = { slug: '2gb', memory: 2048, vcpus: 2, disk: 40 };
const RESERVED = { memory: 2048, disk: 50 };

function host(over: Partial<HostCandidate> = {}): HostCandidate {
  return {
    id: 1,
    name: 'nyc1-hv0001',
    region_id: 1,
    memory: 131072,
    disk: 1920,
    allocatable_memory: 131072 - RESERVED.memory,
    allocatable_disk: 1920 - RESERVED.disk,
    cpus: 24,
    vmcount: 10,
    memfree: 65536,
    diskfree_actual: 1500,
    error_count: 0,
    state: '',
    busy: {},
    metrics_age_ms: 1000,
    ...over,
  };
}

const OPTIONS: RankOptions = { filters: FILTERS, policy: 'v1-compatible', overcommit: 4, maxStalenessMs: 10_000, verdicts: true };

function firstFilter(h: HostCandidate, size: SizeSpec = SIZE): { filter?: FilterId; message?: string } {
  const [v] = rankHosts([h], { region_id: 1, size }, OPTIONS).verdicts!;
  return { filter: v!.filter, message: v!.message };
}

describe('filters: each one, alone', () => {
  const cases: Array<[FilterId, Partial<HostCandidate>, string, SizeSpec?]> = [
    ['metrics-missing', { metrics_age_ms: undefined }, 'no complete host metrics scraped for this hypervisor'],
    ['metrics-stale', { metrics_age_ms: 10_001 }, 'metrics stale: last report 10 s ago (limit 10 s)'],
    ['too-many-errors', { error_count: 4 }, 'TOO MANY ERRORS: errors=4'],
    ['state', { state: 'maintenance' }, 'state = maintenance'],
    ['overage', { cpus: 24, vmcount: 97 }, 'does not have enough cpus (overage=96) (server cpus= 24) (server vmcount=97)'],
    ['max-135-vms', { cpus: 40, vmcount: 136 }, "don't put more than 135 vms on any boxes right now (server cpus= 40) (server vmcount=136)"],
    ['cpus', { cpus: 1, vmcount: 2 }, 'does not have enough cpus (droplet cpus=2) (server= 1)'],
    ['disk', { diskfree_actual: 39 }, 'not enough diskfree on this server. disk=40'],
    ['memory', { memfree: 2047 }, 'not enough memory on this server. memfree = 2047'],
    ['memory-512', { memfree: 511 }, 'hard limit on memory < 512 for now. memfree=511', { slug: 'tiny', memory: 256, vcpus: 1, disk: 1 }],
    ['busy-create', { busy: { create: 7 } }, 'this server is already busy with creating %busylist->{nyc1-hv0001}->{create}'],
    ['busy-restore', { busy: { restore: 7 } }, 'this server is already busy with a restore (which might be part of a migrate) %busylist->{nyc1-hv0001}->{restore}'],
    ['busy-pdu-reboot', { busy: { pdu_reboot: 7 } }, 'this server has a pending pdu_reboot event'],
    ['busy-ipmi-reboot', { busy: { ipmi_reboot: 7 } }, 'this server has a pending ipmi_reboot event'],
    ['busy-node-unresponsive', { busy: { node_unresponsive: 0 } }, 'this server has a pending node_unresponsive event'],
  ];

  it('covers every filter, in the canonical order', () => {
    expect(cases.map((c) => c[0])).toEqual([...FILTER_IDS]);
  });

  it.each(cases)('%s rejects with its message', (id, over, message, size) => {
    expect(firstFilter(host(over), size)).toEqual({ filter: id, message });
    // And only that rule: at the boundary the host passes.
  });

  it('accepts a host at every boundary', () => {
    const edge = host({ metrics_age_ms: 10_000, error_count: 3, cpus: 34, vmcount: 135, memfree: 2048, diskfree_actual: 40 });
    expect(firstFilter(edge)).toEqual({ filter: undefined, message: undefined });
  });

  it('reports only the first rule that matches, as the Perl elsif chain did', () => {
    expect(firstFilter(host({ error_count: 9, state: 'maintenance', memfree: 0 })).filter).toBe('too-many-errors');
    expect(firstFilter(host({ metrics_age_ms: 60_000, error_count: 9 })).filter).toBe('metrics-stale');
  });

  it('selectFilters keeps the canonical order and refuses unknown ids', () => {
    expect(selectFilters(['memory', 'too-many-errors']).map((f) => f.id)).toEqual(['too-many-errors', 'memory']);
    expect(() => selectFilters(['nope'])).toThrow(/unknown filter "nope"/);
  });
});

describe('parity with rankV1 (the Perl port) on random fleets', () => {
  const rules: readonly V1SkipRule[] = FILTER_IDS.filter((id) => id !== 'metrics-missing' && id !== 'metrics-stale') as V1SkipRule[];

  it('every V1 SKIP rule is a V2 filter, in the same order', () => {
    expect(rules).toEqual([
      'too-many-errors',
      'state',
      'overage',
      'max-135-vms',
      'cpus',
      'disk',
      'memory',
      'memory-512',
      'busy-create',
      'busy-restore',
      'busy-pdu-reboot',
      'busy-ipmi-reboot',
      'busy-node-unresponsive',
    ]);
  });

  it('same skip rule and message per host, same decision, over 300 random worlds', () => {
    const rand = createRandom(20160901);
    const decisions = { place: 0, wait: 0, fail: 0, fallback: 0 };
    for (let world = 0; world < 300; world++) {
      const servers: V1Server[] = [];
      const busy: V1BusyList = {};
      const user: Record<string, number> = {};
      const n = rand.int(1, 12);
      for (let i = 0; i < n; i++) {
        const cpus = rand.pick([1, 8, 24, 32, 40, 48]);
        const memory = rand.pick([131072, 196608, 262144]);
        const s: V1Server = {
          id: i + 1,
          name: `hv-${i + 1}`,
          region_id: rand.chance(0.9) ? 1 : 2,
          cpus,
          memory,
          disk: 1920,
          vmcount: rand.chance(0.15) ? rand.int(cpus * 4 - 2, 140) : rand.int(0, 60),
          memfree: rand.chance(0.3) ? rand.int(0, 4096) : rand.int(0, memory),
          diskfree_actual: rand.chance(0.2) ? rand.int(0, 100) : rand.int(0, 1870),
          error_count: rand.chance(0.15) ? rand.int(4, 9) : rand.int(0, 3),
          state: rand.chance(0.08) ? rand.pick(['maintenance', 'draining']) : '',
        };
        servers.push(s);
        if (rand.chance(0.35)) busy[s.name] = { [rand.pick(V1_BUSY_TYPES)]: rand.int(1, 1000) };
        if (rand.chance(0.2)) user[String(s.id)] = rand.int(1, 3);
      }
      const size = rand.pick<SizeSpec>([
        { slug: '512mb', memory: 512, vcpus: 1, disk: 20 },
        { slug: '2gb', memory: 2048, vcpus: 2, disk: 40 },
        { slug: '16gb', memory: 16384, vcpus: 8, disk: 160 },
        { slug: 'tiny', memory: 256, vcpus: 1, disk: 10 },
      ]);
      const v1 = rankV1({ servers, busy, user_droplets: user, request: { customer_id: 1, region_id: 1, size } });
      const v2 = rankHosts(
        servers.map((s) => host({ ...s, allocatable_memory: s.memory - 2048, allocatable_disk: s.disk - 50, busy: busy[s.name] ?? {}, metrics_age_ms: 0 })),
        { customer_id: 1, region_id: 1, size },
        { ...OPTIONS, userDroplets: new Map(Object.entries(user).map(([k, v]) => [Number(k), v])) },
      );
      const v1Skips = new Map(v1.skips.map((s) => [s.server_id, s]));
      for (const v of v2.verdicts!) {
        const skip = v1Skips.get(v.server_id);
        expect({ id: v.server_id, rule: v.filter, message: v.message }).toEqual({ id: v.server_id, rule: skip?.rule, message: skip?.message });
      }
      const d = v1.decision;
      if (d.action === 'place') {
        expect(v2.outcome).toBe('place');
        expect(v2.ranked[0]!.host.id).toBe(d.server_id);
        expect(v2.ranked[0]!.tier).toBe(d.reason === 'user-fallback' ? 1 : 0);
        if (d.reason === 'user-fallback') decisions.fallback++;
      } else {
        expect(v2.outcome).toBe(d.action);
      }
      decisions[d.action]++;
    }
    // The worlds exercise every branch of the decision.
    expect(decisions.place).toBeGreaterThan(50);
    expect(decisions.wait).toBeGreaterThan(5);
    expect(decisions.fail).toBeGreaterThan(5);
    expect(decisions.fallback).toBeGreaterThan(3);
  });
});

describe('scoring policies', () => {
  const hosts = [
    host({ id: 1, name: 'a', memfree: 100_000, vmcount: 5 }),
    host({ id: 2, name: 'b', memfree: 10_000, vmcount: 50 }),
    host({ id: 3, name: 'c', memfree: 60_000, vmcount: 20 }),
    host({ id: 4, name: 'd', memfree: 60_000, vmcount: 10 }),
  ];
  const order = (policy: RankOptions['policy'], user?: Map<number, number>) =>
    rankHosts(hosts, { region_id: 1, size: SIZE }, { ...OPTIONS, policy, ...(user ? { userDroplets: user } : {}) }).ranked.map((r) => r.host.name);

  it('v1-compatible: most memfree, then fewer VMs, then lowest id', () => {
    expect(order('v1-compatible')).toEqual(['a', 'd', 'c', 'b']);
  });
  it('spread: least loaded first; bin-pack: fullest that fits first', () => {
    expect(order('spread')).toEqual(['a', 'd', 'c', 'b']);
    expect(order('bin-pack')).toEqual(['b', 'd', 'c', 'a']);
  });
  it("hosts holding the customer's droplets come last (v1-compatible: highest id first among them)", () => {
    expect(order('v1-compatible', new Map([[1, 2], [3, 1]]))).toEqual(['d', 'b', 'c', 'a']);
    expect(order('bin-pack', new Map([[2, 1]]))).toEqual(['d', 'c', 'a', 'b']);
  });
  it('scores are what the explanation shows', () => {
    const r = rankHosts([hosts[0]!], { region_id: 1, size: SIZE }, { ...OPTIONS, policy: 'spread' });
    // (100000 - 2048) / 129024 = 0.7592; disk (1500 - 40) / 1870 = 0.7807: the lower wins.
    expect(r.ranked[0]!.score).toBe(75.92);
  });
});

describe('explanation text', () => {
  it('formats "0/N hosts available: …" with the largest groups first', () => {
    const hosts = [
      ...Array.from({ length: 3 }, (_, i) => host({ id: 10 + i, memfree: 100 + i })),
      host({ id: 20, error_count: 5 }),
      host({ id: 21, metrics_age_ms: 99_000 }),
      host({ id: 22, metrics_age_ms: undefined }),
      host({ id: 23, region_id: 2 }),
    ];
    const r = rankHosts(hosts, { region_id: 1, size: SIZE }, OPTIONS);
    expect(r.outcome).toBe('wait');
    expect(summarize(r)).toBe(
      '0/6 hosts available: 3 not enough memory, 1 no metrics, 1 metrics stale, 1 too many errors. Waiting: a host is only busy or not seen recently.',
    );
    const failing = rankHosts(hosts.slice(0, 4), { region_id: 1, size: SIZE }, OPTIONS);
    expect(failing.outcome).toBe('fail');
    expect(summarize(failing)).toBe('0/4 hosts available: 3 not enough memory, 1 too many errors.');
    expect(summarize(rankHosts([], { region_id: 9, size: SIZE }, OPTIONS))).toBe('0/0 hosts available: no host in this region.');
  });

  it('names the chosen host, its score, what was rejected and the conflicts', () => {
    const r = rankHosts([host({ id: 1, name: 'nyc1-hv0001', error_count: 4 }), host({ id: 2, name: 'nyc1-hv0002', memfree: 60000 })], { region_id: 1, size: SIZE }, OPTIONS);
    expect(summarize(r, { chosen: r.ranked[0]! })).toBe('placed on nyc1-hv0002 (v1-compatible score 60000): 1/2 hosts available; rejected: 1 too many errors.');
    expect(summarize(r, { chosen: r.ranked[0]!, attempts: 2, conflicts: [{ host: 'nyc1-hv0009', kind: 'generation' }] })).toBe(
      'placed on nyc1-hv0002 (v1-compatible score 60000): 1/2 hosts available; rejected: 1 too many errors. Attempts 2, conflicts 1 (nyc1-hv0009: generation).',
    );
    expect(formatRejections({})).toBe('');
  });
});

describe('the host-metrics format', () => {
  it('round-trips hosts and reports incomplete ones', () => {
    const h: HostMetrics = {
      hypervisor: 'nyc1-hv0001',
      region: 'nyc1',
      memfree_mb: 65536,
      diskfree_gb: 1500,
      vmcount: 10,
      cpus: 24,
      error_count: 0,
      state: '',
      last_report_ms: 1_700_000_000_500,
      memory_mb: 131072,
      disk_gb: 1920,
    };
    const text = formatHostMetrics([h, { ...h, hypervisor: 'nyc1-hv"2', state: 'maintenance', memory_mb: undefined, disk_gb: undefined }]);
    expect(text).toContain('dobe_host_memfree_mb{hypervisor="nyc1-hv0001",region="nyc1"} 65536');
    expect(text).toContain('dobe_host_state_info{hypervisor="nyc1-hv\\"2",region="nyc1",state="maintenance"} 1');
    expect(text).toContain('dobe_host_last_report_timestamp_seconds{hypervisor="nyc1-hv0001",region="nyc1"} 1700000000.5');
    const { hosts, incomplete } = hostMetricsFromSamples(parsePromText(text).samples);
    expect(hosts.get('nyc1-hv0001')).toEqual(h);
    expect(hosts.get('nyc1-hv"2')!.state).toBe('maintenance');
    expect(incomplete).toEqual([]);

    const partial = hostMetricsFromSamples(
      parsePromText('dobe_host_memfree_mb{hypervisor="a"} 1\ndobe_host_cpus{hypervisor="b"} NaN\nother_metric{hypervisor="c"} 1\n').samples,
    );
    expect(partial.hosts.size).toBe(0);
    expect(partial.incomplete.sort()).toEqual(['a', 'b']);
  });

  it('takes the state whose value is 1, and an out-of-service one when two are', () => {
    const base = 'dobe_host_memfree_mb{hypervisor="a"} 1\ndobe_host_diskfree_gb{hypervisor="a"} 1\ndobe_host_vmcount{hypervisor="a"} 1\ndobe_host_cpus{hypervisor="a"} 1\ndobe_host_error_count{hypervisor="a"} 0\ndobe_host_last_report_timestamp_seconds{hypervisor="a"} 1\n';
    const one = hostMetricsFromSamples(parsePromText(base + 'dobe_host_state_info{hypervisor="a",state=""} 0\ndobe_host_state_info{hypervisor="a",state="draining"} 1\n').samples);
    expect(one.hosts.get('a')!.state).toBe('draining');
    const two = hostMetricsFromSamples(parsePromText(base + 'dobe_host_state_info{hypervisor="a",state=""} 1\ndobe_host_state_info{hypervisor="a",state="maintenance"} 1\n').samples);
    expect(two.hosts.get('a')!.state).toBe('maintenance');
  });
});

describe('POST /explain body validation', () => {
  it('accepts slugs, ids and explicit sizes', () => {
    expect(parseExplainInput({ region: 'nyc1', size: '2gb' })).toEqual({ region: 'nyc1', size: '2gb' });
    expect(parseExplainInput({ region: 1, size: { memory: 1024, vcpus: 1, disk: 25 }, customer_id: 3, policy: 'spread', hosts: true, top: 3 })).toEqual({
      region: 1,
      size: { slug: 'custom', memory: 1024, vcpus: 1, disk: 25 },
      customer_id: 3,
      policy: 'spread',
      hosts: true,
      top: 3,
    });
  });
  it.each([
    [null, /JSON object/],
    [[], /JSON object/],
    [{ region: 'nyc1' }, /"size" is required/],
    [{ size: '2gb' }, /"region" is required/],
    [{ region: 'nyc1', size: '2gb', extra: 1 }, /unknown field "extra"/],
    [{ region: 'nyc1', size: { memory: '1' , vcpus: 1, disk: 1 } }, /integer "memory"/],
    [{ region: 'nyc1', size: { memory: 1, vcpus: 1, disk: 1, gpu: 1 } }, /unknown field "size.gpu"/],
    [{ region: 'nyc1', size: '2gb', policy: 'random' }, /"policy" must be one of/],
    [{ region: 'nyc1', size: '2gb', customer_id: -1 }, /customer_id/],
    [{ region: 'x'.repeat(33), size: '2gb' }, /"region" is required/],
  ])('refuses %j', (body, message) => {
    expect(() => parseExplainInput(body)).toThrow(message);
  });
});
