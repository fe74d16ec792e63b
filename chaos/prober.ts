import mysql from 'mysql2/promise';
import type { DbConfig } from '../lib/db/config.ts';

/** True when the component serves again. Must not throw (a failed check is false). */
export type Probe = () => Promise<boolean>;

export interface Recovery {
  recovered: boolean;
  /** From the fault to the first passing probe (or to the timeout). */
  ms: number;
}

/**
 * Polls `probe` every `intervalMs` from `since` (the moment of the fault)
 * until it passes, and says how long the component took to serve again.
 *
 * @example
 *   const { recovered, ms } = await measureRecovery(httpReady(url), { since: Date.now(), timeoutMs: 60_000 });
 */
export async function measureRecovery(probe: Probe, options: { since: number; timeoutMs: number; intervalMs?: number }): Promise<Recovery> {
  const interval = options.intervalMs ?? 50;
  for (;;) {
    if (await probe().catch(() => false)) return { recovered: true, ms: Date.now() - options.since };
    if (Date.now() - options.since > options.timeoutMs) return { recovered: false, ms: Date.now() - options.since };
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** `GET <url><path>` answers 200 within `timeoutMs`. */
export function httpOk(url: string, path = '/readyz', timeoutMs = 2000): Probe {
  return async () => {
    const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(timeoutMs) }).catch(() => undefined);
    await res?.body?.cancel().catch(() => {});
    return res?.status === 200;
  };
}

/** A fresh connection to the server logs in and answers a query. */
export function mysqlAnswers(config: DbConfig, timeoutMs = 2000): Probe {
  return async () => {
    const conn = await mysql.createConnection({ ...config, connectTimeout: timeoutMs }).catch(() => undefined);
    if (!conn) return false;
    try {
      await conn.query({ sql: 'SELECT 1', timeout: timeoutMs });
      return true;
    } catch {
      return false;
    } finally {
      conn.destroy();
    }
  };
}

/** Every probe passes (checked in order; stops at the first that fails). */
export function allOf(...probes: Probe[]): Probe {
  return async () => {
    for (const p of probes) if (!(await p().catch(() => false))) return false;
    return true;
  };
}

/** A synchronous condition as a probe (a replacement process is listed, say). */
export function check(condition: () => boolean): Probe {
  return async () => condition();
}
