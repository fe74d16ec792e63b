import { formatMysqlUrl, type DbConfig } from '../../lib/db/config.ts';
import { startServiceProcess, type ServiceProcess } from './service-process.ts';

export type CloudProcess = ServiceProcess;

/** Runs `legacy/cloud/main.ts` (Cloud with its direct event path) as a real child process (for kill -9) and waits for /readyz. */
export function startCloudProcess(options: { db: DbConfig; port: number; harpoon?: { urls: string[]; token: string }; relayWaitMs?: number; outbox?: { leaseMs?: number; scanMs?: number } }): Promise<CloudProcess> {
  return startServiceProcess(
    'legacy/cloud/main.ts',
    {
      CLOUD_MYSQL_URL: formatMysqlUrl(options.db),
      ...(options.harpoon ? { CLOUD_HARPOON_URLS: options.harpoon.urls.join(','), CLOUD_HARPOON_TOKEN: options.harpoon.token } : {}),
      ...(options.relayWaitMs === undefined ? {} : { CLOUD_RELAY_WAIT_MS: String(options.relayWaitMs) }),
      ...(options.outbox?.leaseMs === undefined ? {} : { CLOUD_OUTBOX_LEASE_MS: String(options.outbox.leaseMs) }),
      ...(options.outbox?.scanMs === undefined ? {} : { CLOUD_OUTBOX_SCAN_MS: String(options.outbox.scanMs) }),
    },
    options.port,
  );
}
