/**
 * Runs the Cloud API from the environment (variables: cloud/run-from-env.ts)
 * with its legacy direct event path, for every stage of the migration:
 *
 *   CLOUD_MYSQL_URL=mysql://cloud:…@127.0.0.1:3306/strangler_demo node --import tsx legacy/cloud/main.ts
 */
import { runCloudFromEnv } from '../../cloud/run-from-env.ts';
import { directEvents } from './direct-events.ts';

runCloudFromEnv(process.env, { directEvents });
