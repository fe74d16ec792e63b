import { spawnSync } from 'node:child_process';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { UsageError, type CommandIO } from '../../../cli/command.ts';
import { command, runV1Rank, runV1RankJson } from '../../../cli/commands/scheduler.ts';
import {
  rankV1,
  type V1BusyType,
  type V1RankInput,
  type V1Server,
  type V1Size,
  type V1SkipRule,
} from '../../../legacy/scheduler-v1/rank.ts';
import { formatSkipPrefix, perlInt, perlNum } from '../../../domain/skip-line.ts';

// Expected lines below are typed out by hand, never built with formatSkipPrefix:
// a bug in the formatter must not be able to agree with itself.

const BASE: V1Server = {
  id: 1,
  name: 'hv-01',
  region_id: 1,
  cpus: 24,
  memory: 131072,
  disk: 2000,
  vmcount: 10,
  memfree: 65536,
  diskfree_actual: 1500,
  error_count: 0,
  state: '',
};
const SIZE: V1Size = { slug: 's-2vcpu-2gb', memory: 2048, vcpus: 2, disk: 60 };

/** The SKIP prefix of BASE, typed out. */
const P = '\tSKIP hv-01        region=1 memfree=  65536 diskfree_actual=  1500 ';
const USER_LINE = 'user already has droplets on this server.';

const server = (over: Partial<V1Server> = {}): V1Server => ({ ...BASE, ...over });

function input(servers: V1Server[], over: Partial<Omit<V1RankInput, 'servers'>> & { size?: Partial<V1Size> } = {}): V1RankInput {
  const { size, ...rest } = over;
  return {
    servers,
    request: { event_id: 1001, customer_id: 42, region_id: 1, size: { ...SIZE, ...size } },
    busy: {},
    user_droplets: {},
    ...rest,
  };
}

describe('formatSkipPrefix / Perl printf', () => {
  it.each([
    ['hv-01', 1, 65536, 1500, '\tSKIP hv-01        region=1 memfree=  65536 diskfree_actual=  1500 '],
    ['hv-nyc3-00123', 12, 512, 60, '\tSKIP hv-nyc3-00123 region=12 memfree=    512 diskfree_actual=    60 '],
    ['exactly12chr', 1, 0, 0, '\tSKIP exactly12chr region=1 memfree=      0 diskfree_actual=     0 '],
    ['hv-02', 1, 12345678, 1234567, '\tSKIP hv-02        region=1 memfree=12345678 diskfree_actual=1234567 '],
    ['hv-03', 1, 1023.9, -5.5, '\tSKIP hv-03        region=1 memfree=   1023 diskfree_actual=    -5 '],
  ])('%s region=%d memfree=%d diskfree=%d', (name, region, memfree, disk, expected) => {
    expect(formatSkipPrefix(name, region, memfree, disk)).toBe(expected);
  });

  it('%d truncates toward zero and never prints -0', () => {
    expect([perlInt(2.9), perlInt(-2.9), perlInt(-0.4)]).toEqual(['2', '-2', '0']);
  });

  it('interpolated numbers print like Perl (%.15g)', () => {
    expect([perlNum(96), perlNum(0.1 + 0.2), perlNum(10.5), perlNum(1.5e-5), perlNum(1e21), perlNum(2 ** 60)]).toEqual([
      '96',
      '0.3',
      '10.5',
      '1.5e-05',
      '1e+21',
      '1.15292150460685e+18',
    ]);
  });
});

interface Violation {
  server?: Partial<V1Server>;
  size?: Partial<V1Size>;
  busy?: Partial<Record<V1BusyType, number>>;
  user_droplets?: number;
  /** The whole log line, byte for byte. */
  line: string;
}

interface RuleCase {
  rule: V1SkipRule;
  /** Only rule k is violated. */
  alone: Violation;
  /** Rules k and k+1 are both violated: rule k must be the one reported. */
  withNext: Violation;
}

const RULE_CASES: RuleCase[] = [
  {
    rule: 'too-many-errors',
    alone: { server: { error_count: 4 }, line: `${P}TOO MANY ERRORS: errors=4` },
    withNext: { server: { error_count: 4, state: 'maintenance' }, line: `${P}TOO MANY ERRORS: errors=4` },
  },
  {
    rule: 'state',
    alone: { server: { state: 'maintenance' }, line: `${P}state = maintenance` },
    withNext: { server: { state: 'maintenance', vmcount: 100 }, line: `${P}state = maintenance` },
  },
  {
    rule: 'overage',
    alone: {
      server: { vmcount: 100 },
      line: `${P}does not have enough cpus (overage=96) (server cpus= 24) (server vmcount=100)`,
    },
    withNext: {
      server: { vmcount: 140 },
      line: `${P}does not have enough cpus (overage=96) (server cpus= 24) (server vmcount=140)`,
    },
  },
  {
    rule: 'max-135-vms',
    alone: {
      server: { cpus: 40, vmcount: 140 },
      line: `${P}don't put more than 135 vms on any boxes right now (server cpus= 40) (server vmcount=140)`,
    },
    withNext: {
      server: { cpus: 40, vmcount: 140 },
      size: { vcpus: 48 },
      line: `${P}don't put more than 135 vms on any boxes right now (server cpus= 40) (server vmcount=140)`,
    },
  },
  {
    rule: 'cpus',
    alone: { size: { vcpus: 32 }, line: `${P}does not have enough cpus (droplet cpus=32) (server= 24)` },
    withNext: {
      size: { vcpus: 32 },
      server: { diskfree_actual: 10 },
      line: '\tSKIP hv-01        region=1 memfree=  65536 diskfree_actual=    10 does not have enough cpus (droplet cpus=32) (server= 24)',
    },
  },
  {
    rule: 'disk',
    alone: {
      server: { diskfree_actual: 10 },
      line: '\tSKIP hv-01        region=1 memfree=  65536 diskfree_actual=    10 not enough diskfree on this server. disk=60',
    },
    withNext: {
      server: { diskfree_actual: 10, memfree: 1000 },
      line: '\tSKIP hv-01        region=1 memfree=   1000 diskfree_actual=    10 not enough diskfree on this server. disk=60',
    },
  },
  {
    rule: 'memory',
    alone: {
      server: { memfree: 1000 },
      line: '\tSKIP hv-01        region=1 memfree=   1000 diskfree_actual=  1500 not enough memory on this server. memfree = 1000',
    },
    withNext: {
      server: { memfree: 300 },
      line: '\tSKIP hv-01        region=1 memfree=    300 diskfree_actual=  1500 not enough memory on this server. memfree = 300',
    },
  },
  {
    // Unreachable with real sizes (all >= 512 MB); a 256 MB size reaches it.
    rule: 'memory-512',
    alone: {
      server: { memfree: 300 },
      size: { memory: 256 },
      line: '\tSKIP hv-01        region=1 memfree=    300 diskfree_actual=  1500 hard limit on memory < 512 for now. memfree=300',
    },
    withNext: {
      server: { memfree: 300 },
      size: { memory: 256 },
      busy: { create: 77 },
      line: '\tSKIP hv-01        region=1 memfree=    300 diskfree_actual=  1500 hard limit on memory < 512 for now. memfree=300',
    },
  },
  {
    rule: 'busy-create',
    alone: { busy: { create: 77 }, line: `${P}this server is already busy with creating %busylist->{hv-01}->{create}` },
    withNext: {
      busy: { create: 77, restore: 78 },
      line: `${P}this server is already busy with creating %busylist->{hv-01}->{create}`,
    },
  },
  {
    rule: 'busy-restore',
    alone: {
      busy: { restore: 78 },
      line: `${P}this server is already busy with a restore (which might be part of a migrate) %busylist->{hv-01}->{restore}`,
    },
    withNext: {
      busy: { restore: 78, pdu_reboot: 79 },
      line: `${P}this server is already busy with a restore (which might be part of a migrate) %busylist->{hv-01}->{restore}`,
    },
  },
  {
    rule: 'busy-pdu-reboot',
    alone: { busy: { pdu_reboot: 79 }, line: `${P}this server has a pending pdu_reboot event` },
    withNext: { busy: { pdu_reboot: 79, ipmi_reboot: 80 }, line: `${P}this server has a pending pdu_reboot event` },
  },
  {
    rule: 'busy-ipmi-reboot',
    alone: { busy: { ipmi_reboot: 80 }, line: `${P}this server has a pending ipmi_reboot event` },
    withNext: { busy: { ipmi_reboot: 80, node_unresponsive: 81 }, line: `${P}this server has a pending ipmi_reboot event` },
  },
  {
    rule: 'busy-node-unresponsive',
    alone: { busy: { node_unresponsive: 81 }, line: `${P}this server has a pending node_unresponsive event` },
    // Rule 14 is the "user already has droplets" fallback: it must not run either.
    withNext: { busy: { node_unresponsive: 81 }, user_droplets: 3, line: `${P}this server has a pending node_unresponsive event` },
  },
];

function runViolation(v: Violation) {
  return rankV1(
    input([server(v.server)], {
      ...(v.size ? { size: v.size } : {}),
      busy: v.busy ? { 'hv-01': v.busy } : {},
      user_droplets: v.user_droplets === undefined ? {} : { '1': v.user_droplets },
    }),
  );
}

describe('SKIP rules (the Perl elsif chain)', () => {
  it('the base server passes every rule, so each case below is caused by its own violation', () => {
    const r = rankV1(input([server()]));
    expect(r.log).toEqual([]);
    expect(r.decision).toEqual({ action: 'place', server_id: 1, server_name: 'hv-01', reason: 'best-memfree' });
  });

  it('the table covers the 13 rules in the Perl order', () => {
    expect(RULE_CASES.map((c) => c.rule)).toEqual([
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

  describe.each(RULE_CASES.map((c, i) => ({ ...c, n: i + 1 })))('rule $n: $rule', ({ rule, alone, withNext }) => {
    const holdsForBusy = rule === 'busy-create' || rule === 'busy-restore';

    it.each([
      ['fires on its own', alone],
      ['wins over the next rule', withNext],
    ] as const)('%s', (_label, violation) => {
      const r = runViolation(violation);
      expect(r.log).toEqual([violation.line]);
      expect(r.skips).toEqual([{ server_id: 1, server_name: 'hv-01', rule, message: violation.line.slice(P.length) }]);
      expect(r.candidates).toBe(0);
      expect(r.best_server_user).toBeNull();
      // Only a create/restore means "healthy but occupied": the event waits instead of failing.
      expect(r.any_valid_busy_servers).toBe(holdsForBusy);
      expect(r.decision).toEqual(holdsForBusy ? { action: 'wait' } : { action: 'fail', reason: 'no server can take this droplet' });
    });
  });
});

describe('busy servers', () => {
  it('prints the Perl literal %busylist->{name}->{create}, never the event id', () => {
    const r = rankV1(input([server({ name: 'hv-nyc3-00123' })], { busy: { 'hv-nyc3-00123': { create: 987654 } } }));
    expect(r.log).toEqual([
      '\tSKIP hv-nyc3-00123 region=1 memfree=  65536 diskfree_actual=  1500 this server is already busy with creating %busylist->{hv-nyc3-00123}->{create}',
    ]);
    expect(r.log[0]).not.toContain('987654');
  });

  it('leaves the event pending (wait) when the only usable hosts are busy with a create or restore', () => {
    const r = rankV1(
      input([server(), server({ id: 2, name: 'hv-02', error_count: 9 }), server({ id: 3, name: 'hv-03' })], {
        busy: { 'hv-01': { create: 70 }, 'hv-03': { restore: 71 } },
      }),
    );
    expect(r.skips.map((s) => s.rule)).toEqual(['busy-create', 'too-many-errors', 'busy-restore']);
    expect(r.any_valid_busy_servers).toBe(true);
    expect(r.decision).toEqual({ action: 'wait' });
  });

  it('a pending reboot or unresponsive node does not count as "valid busy": the event fails', () => {
    const r = rankV1(
      input([server(), server({ id: 2, name: 'hv-02' })], {
        busy: { 'hv-01': { pdu_reboot: 1 }, 'hv-02': { node_unresponsive: 2 } },
      }),
    );
    expect(r.any_valid_busy_servers).toBe(false);
    expect(r.decision).toEqual({ action: 'fail', reason: 'no server can take this droplet' });
  });

  it('tests the key with Perl `exists`, not the value: event id 0 still means busy', () => {
    const r = rankV1(input([server()], { busy: { 'hv-01': { create: 0 } } }));
    expect(r.skips.map((s) => s.rule)).toEqual(['busy-create']);
  });

  it('a busy entry is matched by server name, and only for that server', () => {
    const r = rankV1(input([server(), server({ id: 2, name: 'hv-02' })], { busy: { 'hv-02': { create: 5 } } }));
    expect(r.skips.map((s) => s.server_name)).toEqual(['hv-02']);
    expect(r.decision).toMatchObject({ action: 'place', server_id: 1 });
  });

  it('a server named like an Object.prototype key is not mistaken for busy', () => {
    const r = rankV1(input([server({ name: 'constructor' })]));
    expect(r.decision).toMatchObject({ action: 'place', server_name: 'constructor' });
  });
});

describe('"user already has droplets on this server" fallback', () => {
  it('logs the bare Perl line (no tab, no SKIP prefix) and picks the highest id, whatever its memfree', () => {
    const r = rankV1(
      input(
        [
          server({ id: 2, name: 'hv-02', memfree: 4096 }),
          server({ id: 1, name: 'hv-01', memfree: 100000 }),
          server({ id: 3, name: 'hv-03', error_count: 4 }),
        ],
        { user_droplets: { '1': 2, '2': 1 } },
      ),
    );
    expect(r.log).toEqual([
      'user already has droplets on this server.',
      'user already has droplets on this server.',
      '\tSKIP hv-03        region=1 memfree=  65536 diskfree_actual=  1500 TOO MANY ERRORS: errors=4',
    ]);
    expect(r.skips.map((s) => s.server_id)).toEqual([3]);
    expect(r.candidates).toBe(0);
    expect(r.best_server_user).toBe(2);
    expect(r.decision).toEqual({ action: 'place', server_id: 2, server_name: 'hv-02', reason: 'user-fallback' });
  });

  it('any clean server beats the fallback, even one with far less memfree', () => {
    const r = rankV1(
      input([server({ memfree: 100000 }), server({ id: 2, name: 'hv-02', memfree: 4096 })], { user_droplets: { '1': 5 } }),
    );
    expect(r.log).toEqual([USER_LINE]);
    expect(r.best_server_user).toBe(1);
    expect(r.decision).toEqual({ action: 'place', server_id: 2, server_name: 'hv-02', reason: 'best-memfree' });
  });

  it('the fallback beats waiting for a busy server', () => {
    const r = rankV1(
      input([server(), server({ id: 2, name: 'hv-02' })], { busy: { 'hv-01': { create: 9 } }, user_droplets: { '2': 1 } }),
    );
    expect(r.any_valid_busy_servers).toBe(true);
    expect(r.decision).toEqual({ action: 'place', server_id: 2, server_name: 'hv-02', reason: 'user-fallback' });
  });

  it('a count of 0 means no droplets: the server stays a normal candidate', () => {
    const r = rankV1(input([server()], { user_droplets: { '1': 0 } }));
    expect(r.log).toEqual([]);
    expect(r.decision).toMatchObject({ action: 'place', server_id: 1, reason: 'best-memfree' });
  });

  it('only applies to servers that passed every SKIP rule', () => {
    const r = rankV1(input([server({ state: 'draining' })], { user_droplets: { '1': 1 } }));
    expect(r.log).toEqual([`${P}state = draining`]);
    expect(r.best_server_user).toBeNull();
    expect(r.decision.action).toBe('fail');
  });
});

describe('final choice (CHOICE: the seed stops before it)', () => {
  const place = (servers: V1Server[]) => rankV1(input(servers)).decision;

  it('places on the valid server with the most memfree', () => {
    expect(
      place([server({ memfree: 8192 }), server({ id: 2, name: 'hv-02', memfree: 32768 }), server({ id: 3, name: 'hv-03', memfree: 16384 })]),
    ).toEqual({ action: 'place', server_id: 2, server_name: 'hv-02', reason: 'best-memfree' });
  });

  it('a skipped server never wins, however much memfree it has', () => {
    expect(place([server({ memfree: 999999, error_count: 4 }), server({ id: 2, name: 'hv-02', memfree: 4096 })])).toMatchObject({
      server_id: 2,
    });
  });

  it('ties on memfree go to fewer VMs', () => {
    expect(place([server({ vmcount: 30 }), server({ id: 2, name: 'hv-02', vmcount: 20 })])).toMatchObject({ server_id: 2 });
  });

  it('ties on memfree and VMs go to the lowest id, whatever the input order', () => {
    expect(place([server({ id: 7, name: 'hv-07' }), server({ id: 3, name: 'hv-03' }), server({ id: 5, name: 'hv-05' })])).toMatchObject({
      server_id: 3,
    });
  });

  it('fails when there are no servers at all', () => {
    expect(place([])).toEqual({ action: 'fail', reason: 'no server can take this droplet' });
  });

  it('servers of other regions are ignored silently: no log, no skip, never chosen', () => {
    const r = rankV1(
      input([server({ id: 1, region_id: 2, memfree: 999999 }), server({ id: 2, name: 'hv-02', region_id: 2, error_count: 9 }), server({ id: 3, name: 'hv-03', memfree: 4096 })]),
    );
    expect(r.log).toEqual([]);
    expect(r.skips).toEqual([]);
    expect(r.candidates).toBe(1);
    expect(r.decision).toMatchObject({ server_id: 3 });
  });

  it('overcommit sets $overage = cpus * overcommit (default 4)', () => {
    const overage = (cpus: number, vmcount: number, overcommit?: number) =>
      rankV1(input([server({ cpus, vmcount })], overcommit === undefined ? {} : { overcommit })).skips[0]?.message;
    expect(overage(24, 97)).toBe('does not have enough cpus (overage=96) (server cpus= 24) (server vmcount=97)');
    expect(overage(24, 96)).toBeUndefined();
    expect(overage(24, 49, 2)).toBe('does not have enough cpus (overage=48) (server cpus= 24) (server vmcount=49)');
    expect(overage(7, 11, 1.5)).toBe('does not have enough cpus (overage=10.5) (server cpus= 7) (server vmcount=11)');
  });
});

// The seed's fragment, completed only where the slide cut it off (the printf
// argument list, the two cut `print` lines, the closing of the fallback
// branch) and with `elseif` spelled `elsif`: the seed's `elseif` does not
// compile in Perl. Wrapped in the loop the seed does not show.
const PERL = String.raw`
use strict; use warnings; use JSON::PP;
local $/; my $in = decode_json(<STDIN>);
my $busylist = $in->{busy};
my $droplet_counts_by_server = $in->{user_droplets};
my $size_cpus = $in->{request}{size}{vcpus};
my $size_disk = $in->{request}{size}{disk};
my $size_memory = $in->{request}{size}{memory};
my $best_server_user;
my $any_valid_busy_servers = 0;
for my $server_info (@{$in->{servers}}) {
  next unless $server_info->{region_id} == $in->{request}{region_id};
  my $server_name = $server_info->{name};
  my $server_id = $server_info->{id};
  my $region_id = $server_info->{region_id};
  my $memfree = $server_info->{memfree};
  my $diskfree_actual = $server_info->{diskfree_actual};
  my $overage = $server_info->{cpus} * ($in->{overcommit} // 4);

if ($server_info->{'error_count'} > 3) {
    printf "\tSKIP %-12s region=%d memfree=%7d diskfree_actual=%6d ", $server_name, $region_id, $memfree, $diskfree_actual;
    print "TOO MANY ERRORS: errors=$server_info->{error_count}\n";
} elsif ($server_info->{'state'} ne "") {
    printf "\tSKIP %-12s region=%d memfree=%7d diskfree_actual=%6d ", $server_name, $region_id, $memfree, $diskfree_actual;
    print "state = $server_info->{'state'}\n";
} elsif ($server_info->{'vmcount'} > $overage) {
    printf "\tSKIP %-12s region=%d memfree=%7d diskfree_actual=%6d ", $server_name, $region_id, $memfree, $diskfree_actual;
    print "does not have enough cpus (overage=$overage) (server cpus= $server_info->{cpus}) (server vmcount=$server_info->{vmcount})\n";

} elsif ($server_info->{'vmcount'} > 135) {
    printf "\tSKIP %-12s region=%d memfree=%7d diskfree_actual=%6d ", $server_name, $region_id, $memfree, $diskfree_actual;
    print "don't put more than 135 vms on any boxes right now (server cpus= $server_info->{cpus}) (server vmcount=$server_info->{vmcount})\n";

} elsif ($server_info->{'cpus'} < $size_cpus) {
    printf "\tSKIP %-12s region=%d memfree=%7d diskfree_actual=%6d ", $server_name, $region_id, $memfree, $diskfree_actual;
    print "does not have enough cpus (droplet cpus=$size_cpus) (server= $server_info->{cpus})\n";

} elsif ($diskfree_actual < $size_disk) {
    printf "\tSKIP %-12s region=%d memfree=%7d diskfree_actual=%6d ", $server_name, $region_id, $memfree, $diskfree_actual;
    print "not enough diskfree on this server. disk=$size_disk\n";
} elsif ($memfree < $size_memory) {
    printf "\tSKIP %-12s region=%d memfree=%7d diskfree_actual=%6d ", $server_name, $region_id, $memfree, $diskfree_actual;
    print "not enough memory on this server. memfree = $memfree\n";
} elsif ($memfree < 512) {
    printf "\tSKIP %-12s region=%d memfree=%7d diskfree_actual=%6d ", $server_name, $region_id, $memfree, $diskfree_actual;
    print "hard limit on memory < 512 for now. memfree=$memfree\n";
} elsif (exists $busylist->{$server_name}->{'create'}) {
    printf "\tSKIP %-12s region=%d memfree=%7d diskfree_actual=%6d ", $server_name, $region_id, $memfree, $diskfree_actual;
    print "this server is already busy with creating %busylist->{$server_name}->{create}\n";
    $any_valid_busy_servers = 1;
} elsif (exists $busylist->{$server_name}->{'restore'}) {
    printf "\tSKIP %-12s region=%d memfree=%7d diskfree_actual=%6d ", $server_name, $region_id, $memfree, $diskfree_actual;
    print "this server is already busy with a restore (which might be part of a migrate) %busylist->{$server_name}->{restore}\n";
    $any_valid_busy_servers = 1;
} elsif (exists $busylist->{$server_name}->{'pdu_reboot'}) {
    printf "\tSKIP %-12s region=%d memfree=%7d diskfree_actual=%6d ", $server_name, $region_id, $memfree, $diskfree_actual;
    print "this server has a pending pdu_reboot event\n";
} elsif (exists $busylist->{$server_name}->{'ipmi_reboot'}) {
    printf "\tSKIP %-12s region=%d memfree=%7d diskfree_actual=%6d ", $server_name, $region_id, $memfree, $diskfree_actual;
    print "this server has a pending ipmi_reboot event\n";
} elsif (exists $busylist->{$server_name}->{'node_unresponsive'}) {
    printf "\tSKIP %-12s region=%d memfree=%7d diskfree_actual=%6d ", $server_name, $region_id, $memfree, $diskfree_actual;
    print "this server has a pending node_unresponsive event\n";
} elsif (exists $droplet_counts_by_server->{$server_id}) {
    print "user already has droplets on this server.\n";
    if (! defined($best_server_user) || $best_server_user < $server_id) {
        $best_server_user = $server_id;
    }
}

}
print "best_server_user=", ($best_server_user // 'undef'), " any_valid_busy_servers=$any_valid_busy_servers\n";
`;

const hasPerl = spawnSync('perl', ['-MJSON::PP', '-e', '1']).status === 0;

/** Deterministic PRNG (mulberry32) so a failure reproduces. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fuzzFleet(seed: number): V1RankInput {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const servers: V1Server[] = [];
  const busy: V1RankInput['busy'] = {};
  const userDroplets: Record<string, number> = {};
  for (let id = 1; id <= 60; id++) {
    const name = pick(['hv-', 'nyc3-hyp-', 'x']) + String(id).padStart(pick([1, 2, 5]), '0');
    servers.push({
      id,
      name,
      region_id: pick([1, 1, 1, 1, 2]),
      cpus: pick([2, 7, 8, 24, 32, 34, 40, 48]),
      memory: 131072,
      disk: 2000,
      vmcount: pick([0, 3, 12, 28, 29, 96, 97, 135, 136, 140, 170]),
      memfree: pick([100, 300, 511, 512, 1000, 1023.75, 2047, 2048, 65536, 12345678]),
      diskfree_actual: pick([-3, 10, 59, 60, 61, 1500, 1234567]),
      error_count: pick([0, 0, 0, 1, 3, 4, 12]),
      state: pick(['', '', '', '', 'maintenance', 'draining']),
    });
    const types = (['create', 'restore', 'pdu_reboot', 'ipmi_reboot', 'node_unresponsive'] as const).filter(() => rnd() < 0.12);
    if (types.length > 0) busy[name] = Object.fromEntries(types.map((t, i) => [t, 1000 + id * 10 + i]));
    if (rnd() < 0.2) userDroplets[String(id)] = 1 + Math.floor(rnd() * 4);
  }
  return input(servers, {
    busy,
    user_droplets: userDroplets,
    size: pick([{ memory: 2048, vcpus: 2, disk: 60 }, { memory: 256, vcpus: 1, disk: 20 }, { memory: 16384, vcpus: 8, disk: 320 }]),
    ...(rnd() < 0.3 ? { overcommit: pick([1.5, 2, 3.5]) } : {}),
  });
}

describe.skipIf(!hasPerl)('differential: the port prints exactly what the seed Perl prints', () => {
  const seenRules = new Set<string>();
  let sawUserLine = false;

  it.each(Array.from({ length: 25 }, (_, i) => i + 1))('fleet seed %i', (seed) => {
    const fleet = fuzzFleet(seed);
    const perl = spawnSync('perl', ['-e', PERL], { input: JSON.stringify(fleet), encoding: 'utf8' });
    expect(perl.stderr).toBe('');
    expect(perl.status).toBe(0);
    const r = rankV1(fleet);
    const summary = `best_server_user=${r.best_server_user ?? 'undef'} any_valid_busy_servers=${r.any_valid_busy_servers ? 1 : 0}`;
    expect(perl.stdout).toBe([...r.log, summary].join('\n') + '\n');
    r.skips.forEach((s) => seenRules.add(s.rule));
    sawUserLine ||= r.log.includes(USER_LINE);
  });

  it('the fuzzed fleets reached every rule and the fallback (the comparison is not vacuous)', () => {
    expect(seenRules.size).toBe(13);
    expect(sawUserLine).toBe(true);
  });
});

function fakeIO(stdin: string) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out = { stdout: '', stderr: '' };
  stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const io: CommandIO = { stdout, stderr, stdin: Readable.from([stdin]), env: {}, signal: new AbortController().signal };
  return { io, out };
}

const VALID = input([server({ error_count: 5 }), server({ id: 2, name: 'hv-02', memfree: 32768 })]);

describe('strangler scheduler v1-rank (exported functions)', () => {
  it('runV1RankJson parses, validates and ranks', () => {
    expect(runV1RankJson(JSON.stringify(VALID))).toEqual(rankV1(VALID));
  });

  it.each([
    ['{"servers": [', /stdin is not valid JSON/],
    ['', /stdin is empty/],
    ['[]', /input must be an object, got \[\]/],
  ])('rejects stdin %j as a usage error', (text, message) => {
    expect(() => runV1RankJson(text)).toThrow(UsageError);
    expect(() => runV1RankJson(text)).toThrow(message);
  });

  const mutate = (f: (x: Record<string, any>) => void) => {
    const copy = structuredClone(VALID) as unknown as Record<string, any>;
    f(copy);
    return copy;
  };

  it.each([
    ['servers missing', mutate((x) => delete x.servers), 'servers is missing'],
    ['servers not an array', mutate((x) => (x.servers = {})), 'servers must be an array, got {}'],
    ['server field missing', mutate((x) => delete x.servers[1].memfree), 'servers[1].memfree is missing'],
    ['server field ill-typed', mutate((x) => (x.servers[0].memfree = '65536')), 'servers[0].memfree must be a number, got "65536"'],
    ['server id not an integer', mutate((x) => (x.servers[0].id = 1.5)), 'servers[0].id must be an integer, got 1.5'],
    ['state ill-typed', mutate((x) => (x.servers[0].state = 0)), 'servers[0].state must be a string or null, got 0'],
    ['request missing', mutate((x) => delete x.request), 'request is missing'],
    ['size field missing', mutate((x) => delete x.request.size.vcpus), 'request.size.vcpus is missing'],
    ['event_id ill-typed', mutate((x) => (x.request.event_id = 'e1')), 'request.event_id must be an integer, got "e1"'],
    ['busy missing', mutate((x) => delete x.busy), 'busy is missing'],
    ['busy entry ill-typed', mutate((x) => (x.busy = { 'hv-01': 5 })), 'busy["hv-01"] must be an object, got 5'],
    ['busy event id ill-typed', mutate((x) => (x.busy = { 'hv-01': { create: true } })), 'busy["hv-01"].create must be an integer, got true'],
    ['user_droplets missing', mutate((x) => delete x.user_droplets), 'user_droplets is missing'],
    ['user_droplets key', mutate((x) => (x.user_droplets = { 'hv-01': 1 })), 'user_droplets keys must be server ids, got "hv-01"'],
    ['user_droplets count', mutate((x) => (x.user_droplets = { '1': -1 })), 'user_droplets["1"] must be a droplet count (integer >= 0), got -1'],
    ['overcommit', mutate((x) => (x.overcommit = 0)), 'overcommit must be a number > 0, got 0'],
  ])('%s → UsageError naming the field', (_label, bad, message) => {
    expect(() => runV1Rank(bad)).toThrow(UsageError);
    expect(() => runV1Rank(bad)).toThrow(message);
  });

  it('a NULL state is in service (Perl: undef ne "" is false) and unknown busy types are ignored', () => {
    const r = runV1Rank(
      mutate((x) => {
        x.servers[0].error_count = 0;
        x.servers[0].state = null;
        x.busy = { 'hv-01': { resize: 3 } };
      }),
    );
    expect(r.skips).toEqual([]);
    expect(r.decision).toMatchObject({ server_id: 1 });
  });
});

describe('strangler scheduler v1-rank (command)', () => {
  it.each([[['v1-rank', '--json']], [['v1-rank']]])('%j prints pure JSON and exits 0', async (argv) => {
    const { io, out } = fakeIO(JSON.stringify(VALID));
    expect(await command.run(argv, io)).toBe(0);
    expect(out.stderr).toBe('');
    const printed = JSON.parse(out.stdout);
    expect(printed).toEqual(rankV1(VALID));
    expect(printed.decision).toEqual({ action: 'place', server_id: 2, server_name: 'hv-02', reason: 'best-memfree' });
    expect(printed.log).toEqual([`${P}TOO MANY ERRORS: errors=5`]);
  });

  it('malformed JSON on stdin → exit 2, message on stderr, nothing on stdout', async () => {
    const { io, out } = fakeIO('{"servers": [');
    expect(await command.run(['v1-rank', '--json'], io)).toBe(2);
    expect(out.stdout).toBe('');
    expect(out.stderr).toMatch(/^strangler scheduler: stdin is not valid JSON/);
  });

  it('a missing field → exit 2 naming the field', async () => {
    const { io, out } = fakeIO(JSON.stringify({ ...VALID, request: undefined }));
    expect(await command.run(['v1-rank', '--json'], io)).toBe(2);
    expect(out.stderr).toBe('strangler scheduler: request is missing\n');
  });

  it.each([
    [[], 'missing sub-verb: expected "v1-rank"'],
    [['v2-rank'], 'unknown sub-verb "v2-rank": expected "v1-rank"'],
    [['v1-rank', 'extra'], 'unexpected argument "extra"'],
    [['v1-rank', '--bogus'], "Unknown option '--bogus'"],
  ])('%j → exit 2', async (argv, message) => {
    const { io, out } = fakeIO(JSON.stringify(VALID));
    expect(await command.run(argv, io)).toBe(2);
    expect(out.stderr).toContain(message);
  });

  it('--help prints usage with an example, and the example does what it says', async () => {
    const { io, out } = fakeIO('');
    expect(await command.run(['v1-rank', '--help'], io)).toBe(0);
    expect(out.stdout).toBe(command.help);
    expect(out.stdout).toContain('Usage: strangler scheduler v1-rank');
    const example = /echo '(.*)' \\\n/.exec(out.stdout)?.[1];
    expect(example).toBeDefined();
    const r = runV1RankJson(example ?? '');
    expect(r.decision).toEqual({ action: 'place', server_id: 2, server_name: 'hv-02', reason: 'best-memfree' });
    expect(out.stdout).toContain(JSON.stringify(r.log[0]));
  });
});
