/**
 * MySQL/MariaDB lock failures and the one way this tree runs a statement
 * again after one. A deadlock victim (1213) was rolled back whole, so
 * running it again is safe; a lock wait timeout (1205) rolled back only the
 * statement, which callers that retry whole transactions treat alike.
 */

const DEADLOCK = 1213;
const LOCK_WAIT_TIMEOUT = 1205;

function errno(err: unknown): unknown {
  return (err as { errno?: unknown } | undefined)?.errno;
}

/** The server picked this transaction as a deadlock victim: nothing of it stays. */
export function isDeadlock(err: unknown): boolean {
  return errno(err) === DEADLOCK || (err as { code?: unknown } | undefined)?.code === 'ER_LOCK_DEADLOCK';
}

/** A deadlock or a lock wait timeout: another transaction held what this one needed. */
export function isLockFailure(err: unknown): boolean {
  return isDeadlock(err) || errno(err) === LOCK_WAIT_TIMEOUT;
}

/**
 * Runs `work` (one statement, or one whole transaction) again while the
 * server picks it as a deadlock victim, up to `attempts` times in all. The
 * short random pause keeps the same contenders from colliding again in step.
 *
 * @example
 *   await retryDeadlocks(() => db('event_outbox').where('lease_owner', owner).update({ lease_until }));
 *   await retryDeadlocks(() => db.transaction(async (trx) => { ... }));
 */
export async function retryDeadlocks<T>(work: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      if (!isDeadlock(err) || attempt >= attempts) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
    }
  }
}
