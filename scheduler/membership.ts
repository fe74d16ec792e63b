import type { Knex } from 'knex';

export interface Membership {
  /**
   * Heartbeats and re-reads the live replicas, at most once per heartbeat
   * interval. `read: false` only writes the heartbeat: in Harpoon mode the
   * timer issues no SELECT, and refresh() reads the replicas when a batch
   * needs them.
   */
  beat(force?: boolean, read?: boolean): Promise<void>;
  /** Re-reads the live replicas if the last read is older than a heartbeat (a batch is about to use them). */
  refresh(): Promise<void>;
  /**
   * The regions of `scope` this replica should claim from first: region k
   * (in id order) goes to the k-th live active replica (in name order),
   * modulo their number. Every replica computes the same split, so in a
   * burst each works on its own hosts and CAS conflicts stay rare; any
   * replica still takes any region's events when its own have none.
   */
  preferred(scope: readonly number[]): number[];
  /** Live active replicas, this one included, in name order. */
  members(): readonly string[];
  /** Removes this replica's row (a clean shutdown hands its regions over at once). */
  leave(): Promise<void>;
}

export function createMembership(
  db: Knex,
  replica: string,
  mode: 'active' | 'shadow',
  options: { heartbeatMs: number; timeoutMs: number },
): Membership {
  let members: string[] = [replica];
  let lastBeat = 0;
  let lastRead = 0;
  let lastPreferred = '';

  async function read(): Promise<void> {
    lastRead = Date.now();
    const live = (await db('scheduler_replicas')
        .where({ mode: 'active' })
        .where('heartbeat_at', '>', db.raw('CURRENT_TIMESTAMP(3) - INTERVAL ? MICROSECOND', [options.timeoutMs * 1000]))
        .orderBy('replica')
        .pluck('replica')) as string[];
      // Sorted here, not by the column's collation: every replica must derive the same order.
    members = (mode === 'active' && !live.includes(replica) ? [...live, replica] : live).sort();
  }

  return {
    async beat(force = false, readMembers = true) {
      if (!force && Date.now() - lastBeat < options.heartbeatMs) return;
      lastBeat = Date.now();
      await db.raw(
        `INSERT INTO scheduler_replicas (replica, mode, preferred_regions, heartbeat_at) VALUES (?, ?, ?, CURRENT_TIMESTAMP(3))
         ON DUPLICATE KEY UPDATE mode = VALUES(mode), preferred_regions = VALUES(preferred_regions), heartbeat_at = CURRENT_TIMESTAMP(3)`,
        [replica, mode, lastPreferred.slice(0, 1024)],
      );
      if (readMembers) await read();
    },
    async refresh() {
      if (Date.now() - lastRead >= options.heartbeatMs) await read();
    },
    preferred(scope) {
      if (mode !== 'active' || members.length <= 1) {
        lastPreferred = scope.join(',');
        return [...scope];
      }
      const index = members.indexOf(replica);
      const sorted = [...scope].sort((a, b) => a - b);
      const mine = sorted.filter((_, k) => k % members.length === index);
      lastPreferred = mine.join(',');
      return mine;
    },
    members: () => members,
    async leave() {
      await db('scheduler_replicas').where({ replica }).del();
    },
  };
}
