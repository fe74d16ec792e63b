import type { Knex } from 'knex';
import { readUserCommandCounts } from '../../lib/metrics/user-statistics.ts';
import { cutoverError } from './errors.ts';
import type { GateReading } from './gates.ts';
import type { BudgetGate } from './plan.ts';

/**
 * Budget gates: how much of the database the system uses during a step,
 * as the server counts it — connections in PROCESSLIST, and SELECTs per
 * second between this reading and the previous one of the same gate
 * (per user from USER_STATISTICS where MariaDB keeps it, the server's
 * Com_select otherwise). The first reading of a polling budget has no
 * rate yet: no-data.
 */
export function createBudgetProvider(options: { db: Knex }) {
  const { db } = options;
  const previous = new Map<string, { atMs: number; selects: number }>();

  async function connections(users: readonly string[] | undefined): Promise<number> {
    const [[row]] = (await (users
      ? db.raw(`SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER IN (${users.map(() => '?').join(', ')})`, [...users])
      : db.raw('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST'))) as [[{ n: number }]];
    return Number(row.n);
  }

  async function selects(users: readonly string[] | undefined): Promise<number> {
    if (!users) {
      const [[row]] = (await db.raw("SHOW GLOBAL STATUS LIKE 'Com_select'")) as [[{ Value: string }]];
      return Number(row.Value);
    }
    const counts = await readUserCommandCounts(db);
    if (Object.keys(counts).length === 0) {
      throw cutoverError('CUTOVER_ERR_PROVIDER', 'per-user SELECT counts need MariaDB\'s user statistics (SET GLOBAL userstat = 1); leave users out to budget the whole server');
    }
    return users.reduce((n, u) => n + (counts[u]?.select ?? 0), 0);
  }

  return {
    async evaluate(gate: BudgetGate, base: Pick<GateReading, 'gate' | 'kind' | 'service'>): Promise<GateReading> {
      const who = gate.users ? ` of ${gate.users.join(', ')}` : '';
      const parts: string[] = [];
      let verdict: GateReading['verdict'] = 'pass';
      let value: number | null = null;
      const threshold: GateReading['threshold'] = {};
      if (gate.max_connections !== undefined) {
        const n = await connections(gate.users);
        value = n;
        threshold.max = gate.max_connections;
        const over = n > gate.max_connections;
        if (over) verdict = 'fail';
        parts.push(`${n} connections${who} ${over ? '>' : '<='} ${gate.max_connections}`);
      }
      if (gate.max_polling_queries_per_s !== undefined) {
        const key = `${base.gate}|${gate.users?.join(',') ?? '*'}`;
        const now = { atMs: Date.now(), selects: await selects(gate.users) };
        const before = previous.get(key);
        previous.set(key, now);
        const seconds = before ? (now.atMs - before.atMs) / 1000 : 0;
        if (!before || seconds <= 0 || now.selects < before.selects) {
          if (verdict === 'pass') verdict = 'no-data';
          parts.push(`SELECTs/s${who}: first reading, the rate starts now`);
        } else {
          const rate = Math.round(((now.selects - before.selects) / seconds) * 10) / 10;
          const over = rate > gate.max_polling_queries_per_s;
          if (over) verdict = 'fail';
          if (gate.max_connections === undefined) {
            value = rate;
            threshold.max = gate.max_polling_queries_per_s;
          }
          parts.push(`${rate} SELECTs/s${who} over ${seconds.toFixed(1)}s ${over ? '>' : '<='} ${gate.max_polling_queries_per_s}`);
        }
      }
      return { ...base, threshold, verdict, value, message: parts.join('; ') };
    },
  };
}
