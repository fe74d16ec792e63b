import { Registry } from 'prom-client';
import { createCloud, type Cloud, type CloudOptions } from '../../cloud/create-cloud.ts';
import type { TestDatabase } from './database.ts';
import { directEvents } from '../../legacy/cloud/direct-events.ts';

export interface TestCloud {
  cloud: Cloud;
  url: string;
  registry: Registry;
}

/** A real Cloud on a free port, connected as the `cloud` MySQL user of the test database, with its legacy direct event path unless `directEvents: undefined` is given. */
export async function startTestCloud(t: TestDatabase, options: Partial<CloudOptions> = {}): Promise<TestCloud> {
  const registry = new Registry();
  const cloud = createCloud({ db: t.service('cloud'), registry, directEvents, ...options });
  try {
    const { url } = await cloud.start();
    return { cloud, url, registry };
  } catch (err) {
    await cloud.close();
    throw err;
  }
}

export { cloudClient, type ApiRequest, type ApiResponse } from './cloud-client.ts';
