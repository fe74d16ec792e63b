import { describe, expect, it } from 'vitest';
import type { ChaosReport } from '../../chaos/run-chaos.ts';
import { FAULT_KINDS, planFaults } from '../../chaos/schedule.ts';
import { throwawayAvailable } from '../../lib/db/throwaway-server.ts';
import { runCli } from '../helpers/cli.ts';

describe('chaos: the fault schedule', () => {
  it('is the same for a seed, differs between seeds, and has every kind twice (once with an advance, once with a rollback)', () => {
    const a = planFaults({ seed: 1, durationS: 300 });
    expect(planFaults({ seed: 1, durationS: 300 })).toEqual(a);
    expect(planFaults({ seed: 2, durationS: 300 })).not.toEqual(a);
    for (const kind of FAULT_KINDS) {
      expect(a.filter((f) => f.kind === kind).map((f) => f.cutover.action).sort()).toEqual(['advance', 'rollback']);
    }
    const times = a.map((f) => f.at_s);
    expect([...times].sort((x, y) => x - y)).toEqual(times);
    expect(times[0]).toBeGreaterThanOrEqual(30);
    expect(times.at(-1)!).toBeLessThanOrEqual(255);
  });
});

/**
 * The real CLI, as a process: a short chaos run on its own throwaway
 * MariaDB, with Harpoon. Every fault kind is injected twice (none may be
 * skipped), each recovers, and nothing is lost, doubled or over-committed.
 */
describe.skipIf(!throwawayAvailable())('npm run chaos (short run)', () => {
  it('--help and bad usage', async () => {
    const help = await runCli(['chaos', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage: strangler chaos/);
    const bad = await runCli(['chaos', '--duration', 'soon']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--duration/);
  }, 60_000);

  // Generous timeouts: the 40 s run took 236 s end to end on a 2-core machine at load average 47.
  it('kills every component under traffic while the cutover moves, and loses nothing', async () => {
    const run = await runCli(['chaos', '--hypervisors', '200', '--regions', '2', '--duration', '40', '--seed', '3', '--json'], { timeoutMs: 420_000 });
    // A run that ended before its report (a crash) says why on stderr: shown, not a bare JSON parse error.
    expect(run.stdout.trim(), `exit ${run.code}; stderr:\n${run.stderr.slice(-3000)}`).not.toBe('');
    const report = JSON.parse(run.stdout) as ChaosReport;
    expect(report, run.stderr.slice(-3000)).toMatchObject({ ok: true, lost_events: 0, duplicate_executions: 0, overcommitted_hosts: 0, droplets_without_event: 0, unrecovered_faults: 0 });
    expect(run.code).toBe(0);
    expect(report.events_created).toBeGreaterThan(50);
    expect(report.events_done).toBe(report.events_created - report.events_error);
    expect(report.executions).toBe(report.events_done);
    expect(report.faults).toHaveLength(10);
    // The run has Harpoon (the default): every fault, Harpoon's two included, must really fire. A skipped
    // fault is not a pass: it would hide that a component was never killed.
    expect(report.faults.filter((f) => f.skipped).map((f) => `${f.kind}: ${f.skipped}`)).toEqual([]);
    for (const kind of FAULT_KINDS) {
      const of = report.faults.filter((f) => f.kind === kind);
      expect(of, kind).toHaveLength(2);
      for (const f of of) {
        expect(f.target, `${kind} had a target`).toBeTruthy();
        expect(f.recovered).toBe(true);
        expect(f.recovery_ms).toBeGreaterThan(0);
        expect(f.pid).toBeGreaterThan(0);
        expect(Date.parse(f.fired_at!)).toBeGreaterThan(Date.parse(report.started_at));
        expect(f.cutover_change?.action).toBe(f.cutover.action);
      }
    }
    expect(report.max_recovery_ms).toBe(Math.max(...report.faults.map((f) => f.recovery_ms ?? 0)));
    expect(report.restarts.event_router).toBe(2);
    expect(report.restarts.mysql).toBe(2);
    expect(report.requests.sent).toBeGreaterThan(100);
    // Progress went to stderr while it ran.
    expect(run.stderr).toMatch(/fault 1\/10/);
  }, 450_000);
});
