import type { Knex } from 'knex';
import * as legacySchema from './001_legacy_schema.ts';
import * as cutover from './002_cutover.ts';
import * as cutoverBaseline from './003_cutover_baseline.ts';
import * as router from './004_router.ts';
import * as schedulerV2 from './005_scheduler_v2.ts';
import * as harpoon from './006_harpoon.ts';
import * as eventOutbox from './007_event_outbox.ts';
import * as cutoverAutopilot from './008_cutover_autopilot.ts';
import * as dropletContext from './009_droplet_context.ts';
import * as outboxLeasesLogHorizon from './010_outbox_leases_log_horizon.ts';

interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

/**
 * Migrations are listed here rather than discovered on disk so that they
 * load the same way under tsx, vitest and a bundler. Append new ones.
 */
const MIGRATIONS: Array<[string, Migration]> = [
  ['001_legacy_schema', legacySchema],
  ['002_cutover', cutover],
  ['003_cutover_baseline', cutoverBaseline],
  ['004_router', router],
  ['005_scheduler_v2', schedulerV2],
  ['006_harpoon', harpoon],
  ['007_event_outbox', eventOutbox],
  ['008_cutover_autopilot', cutoverAutopilot],
  ['009_droplet_context', dropletContext],
  ['010_outbox_leases_log_horizon', outboxLeasesLogHorizon],
];

/**
 * A knex migration source over the static list above.
 *
 * @example
 *   await knex.migrate.latest({ migrationSource });
 */
export const migrationSource: Knex.MigrationSource<[string, Migration]> = {
  async getMigrations() {
    return MIGRATIONS;
  },
  getMigrationName([name]) {
    return name;
  },
  async getMigration([, migration]) {
    return migration;
  },
};
