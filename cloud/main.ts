/**
 * Runs the Cloud API from the environment (variables: run-from-env.ts),
 * after the migration: its events go through the outbox to Harpoon, so
 * CLOUD_HARPOON_URLS and CLOUD_HARPOON_TOKEN are needed and `event-writes`
 * must be at full. For the legacy stages run legacy/cloud/main.ts, which
 * adds the direct event path.
 *
 *   CLOUD_MYSQL_URL=mysql://cloud:…@127.0.0.1:3306/strangler_demo CLOUD_HARPOON_URLS=… CLOUD_HARPOON_TOKEN=… node --import tsx cloud/main.ts
 */
import { runCloudFromEnv } from './run-from-env.ts';

runCloudFromEnv(process.env);
