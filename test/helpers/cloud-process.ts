import { formatMysqlUrl, type DbConfig } from '../../lib/db/config.ts';
import { startServiceProcess, type ServiceProcess } from './service-process.ts';

export type CloudProcess = ServiceProcess;

/** Runs `legacy/cloud/main.ts` (Cloud with its direct event path) as a real child process (for kill -9) and waits for /readyz. */
export function startCloudProcess(options: { db: DbConfig; port: number; harpoon?: { urls: string[]; token: string }; relayWaitMs?: number }): Promise<CloudProcess> {
  return startServiceProcess(
    'legacy/cloud/main.ts',
    {
      CLOUD_MYSQL_URL: formatMysqlUrl(options.db),
      ...(options.harpoon ? { CLOUD_HARPOON_URLS: options.harpoon.urls.join(','), CLOUD_HARPOON_TOKEN: options.harpoon.token } : {}),
      ...(options.relayWaitMs === undefined ? {} : { CLOUD_RELAY_WAIT_MS: String(options.relayWaitMs) }),
    },
    options.port,
  );
}
