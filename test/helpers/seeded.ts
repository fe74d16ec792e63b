import type { Knex } from 'knex';
import { generateSeed, type SeedData } from '../../stack/seed/generate.ts';
import { insertSeed } from '../../stack/seed/insert.ts';

/** Seeds a small world and returns what was generated, for assertions. */
export async function seedWorld(db: Knex, options: { hypervisors: number; regions: number; seed?: number }): Promise<SeedData> {
  const data = generateSeed({ seed: 7, ...options });
  await insertSeed(db, data);
  return data;
}

/** Inserts an event straight into the queue table, as legacy services did. */
export async function insertEvent(
  db: Knex,
  event: { type: string; region_id: number; server_id?: number | null; droplet_id?: number | null; status?: string; customer_id?: number | null },
): Promise<number> {
  const [id] = await db('events').insert({
    status: 'pending',
    ...event,
    available_at: event.server_id ? db.raw('CURRENT_TIMESTAMP(3)') : null,
  });
  return Number(id);
}

/** Polls `check` until it returns a truthy value or the time runs out. */
export async function waitFor<T>(check: () => Promise<T | undefined | false | null>, timeoutMs = 15_000, stepMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
