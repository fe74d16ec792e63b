import type { DbConfig } from '../lib/db/config.ts';
import type { ThrowawayServer } from '../lib/db/throwaway-server.ts';
import type { ProxyCluster } from '../proxy/cluster.ts';
import { allOf, check, httpOk, mysqlAnswers, type Probe } from './prober.ts';
import type { FaultKind } from './schedule.ts';

/** Processes with a pid and a URL that serves /readyz: what a kill -9 injector works on. */
export interface PidTargets {
  list(): Array<{ name: string; pid: number; url: string; up: boolean }>;
}

export interface Injected {
  /** Which instance: a region, a replica name, a worker id, the server's port. */
  target: string;
  /** The pid killed. */
  pid: number;
  /** Passes once the component serves again. */
  recovered: Probe;
  /** Work the fault started that must finish (the MySQL restart); awaited before the final check. */
  settled?: Promise<unknown>;
}

export interface Injector {
  kind: FaultKind;
  /** Why this fault cannot run on this stack (no Harpoon replicas, say), or undefined. */
  unavailable(): string | undefined;
  /** Does the damage now; `pick` chooses the instance (modulo how many there are). */
  inject(pick: number): Injected;
}

export interface ChaosTargets {
  routers: PidTargets;
  proxy: ProxyCluster;
  proxyUrl: string;
  scheduler?: PidTargets;
  harpoon?: PidTargets;
  mysql: { server: ThrowawayServer; admin: DbConfig };
}

const kill9 = (pid: number) => {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone: the fault is the same.
  }
};

/** kill -9 of one listed process; recovered when its slot runs another pid that answers /readyz. */
function pidInjector(kind: FaultKind, targets: () => PidTargets | undefined, missing: string): Injector {
  return {
    kind,
    unavailable: () => (targets()?.list().some((p) => p.up && p.pid > 0) ? undefined : missing),
    inject(pick) {
      const live = targets()!.list().filter((p) => p.up && p.pid > 0);
      const victim = live[pick % live.length]!;
      kill9(victim.pid);
      const slot = () => targets()!.list().find((p) => p.name === victim.name);
      return {
        target: victim.name,
        pid: victim.pid,
        recovered: allOf(
          check(() => {
            const now = slot();
            return !!now && now.up && now.pid !== victim.pid;
          }),
          httpOk(victim.url),
        ),
      };
    },
  };
}

/**
 * The chaos run's fault injectors, one per kind: kill -9 of an Event
 * Router, a proxy worker, a Scheduler V2 replica or a Harpoon replica, and
 * a MySQL crash-restart (kill -9 of mariadbd, then the same port and data
 * directory). Each returns a probe that passes once that component serves
 * again.
 *
 * @example
 *   const injectors = createInjectors(targets);
 *   const hit = injectors['event-router'].inject(3);   // { target: 'sfo1', pid: 1234, recovered }
 */
export function createInjectors(t: ChaosTargets): Record<FaultKind, Injector> {
  return {
    'event-router': pidInjector('event-router', () => t.routers, 'no Event Router processes'),
    'scheduler-v2': pidInjector('scheduler-v2', () => t.scheduler, 'no Scheduler V2 replica processes (the stack runs them in-process or not at all)'),
    harpoon: pidInjector('harpoon', () => t.harpoon, 'the stack runs no Harpoon replicas (--without-harpoon)'),
    'proxy-worker': {
      kind: 'proxy-worker',
      unavailable: () => (t.proxy.workers().some((w) => w.listening) ? undefined : 'no proxy worker is listening'),
      inject(pick) {
        const before = t.proxy.workers().filter((w) => w.listening);
        const victim = before[pick % before.length]!;
        kill9(victim.pid);
        return {
          target: `worker-${victim.id}`,
          pid: victim.pid,
          recovered: allOf(
            check(() => {
              const now = t.proxy.workers();
              return !now.some((w) => w.pid === victim.pid) && now.filter((w) => w.listening).length >= before.length;
            }),
            httpOk(t.proxyUrl),
          ),
        };
      },
    },
    mysql: {
      kind: 'mysql',
      unavailable: () => undefined,
      inject() {
        const killed = t.mysql.server.pid;
        const settled = t.mysql.server.crashAndRestart();
        settled.catch(() => {});
        return {
          target: `mariadbd:${t.mysql.admin.port}`,
          pid: killed,
          recovered: allOf(
            check(() => t.mysql.server.pid !== killed),
            mysqlAnswers(t.mysql.admin),
          ),
          settled,
        };
      },
    },
  };
}
