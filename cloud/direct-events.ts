import type { Knex } from 'knex';
import type { EventRecord } from '../contracts/droplet-api.ts';

/** An `events` row as Cloud writes it on the direct path. */
export interface DirectEventRow {
  type: string;
  server_id: number | null;
  region_id: number;
  customer_id: number;
  droplet_id: number;
  /** JSON text. */
  args: string;
  /** Deliverable at once (available_at = now): actions on a placed droplet. */
  availableNow?: boolean;
}

/**
 * Cloud's pre-Harpoon event path: events written to and read from the
 * `events` table directly, as the 2012 Cloud did. The migration retires it
 * (`event-writes`, then `lockdown` revokes Cloud's grants on `events`), so
 * its implementation lives in legacy/cloud/direct-events.ts and is injected
 * by the wiring that still runs the legacy stages. A Cloud without it
 * writes and reads events through Harpoon only, and refuses a request while
 * `event-writes` says otherwise.
 *
 * @example
 *   // The wiring (stack/, the legacy Cloud entry) passes directEvents from the legacy module:
 *   createCloud({ db, harpoon, directEvents });
 */
export interface DirectEvents {
  /** Inserts a pending event inside the caller's transaction (the one that writes its droplet); returns its id. */
  insert(trx: Knex.Transaction, row: DirectEventRow): Promise<number>;
  /** The types of the droplet's pending and running events. */
  inFlight(trx: Knex.Transaction, dropletId: number): Promise<string[]>;
  /** One of the customer's events with its region slug; others' events read as missing. */
  read(db: Knex | Knex.Transaction, customerId: number, eventId: number): Promise<EventRecord | undefined>;
  /** A page of the customer's events (of one droplet, when given), newest first, and how many there are. */
  list(db: Knex, scope: { customerId: number; dropletId?: number }, page: { limit: number; offset: number }): Promise<{ rows: EventRecord[]; total: number }>;
}
