import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseMysqlUrl } from '../../lib/db/config.ts';
import { createMonitor } from '../../lib/metrics/create-monitor.ts';
import { MYSQL_SOURCE_MODULE } from '../../legacy/router/mysql-source.ts';
import { cliLogger } from '../cli-logger.ts';
import { EXIT, UsageError, intOption, parseCommandArgs, waitForStop, type Command, type CommandIO } from '../command.ts';
import { runAdminFromFiles } from '../serve/run-admin.ts';
import { configPath, runProxyFromFile } from '../serve/run-proxy.ts';

/** Services whose own main.ts reads the environment (their supervisors in the stack spawn the same file). */
const MAINS: Record<string, string> = {
  router: '../../router/main.ts',
  scheduler: '../../scheduler/main.ts',
  harpoon: '../../harpoon/main.ts',
  // With its direct event path: a Cloud served here may run in any stage (cloud/main.ts is the post-migration one).
  cloud: '../../legacy/cloud/main.ts',
};
const SERVICES = ['proxy', 'admin', 'monitor', ...Object.keys(MAINS)];

const HELP = `Usage: strangler serve <service> [options]

Runs one service by itself, from its config file and environment, reaching
the others only by URL: run each on its own host (systemd, Kubernetes; see
runbooks/multi-host.md). Stops on SIGTERM/SIGINT, draining first.

Services:
  proxy      The strangler proxy (cluster of workers) from --config FILE (or PROXY_CONFIG_FILE)
  admin      The cutover admin API from --plan FILE and --config FILE (gate services);
             ADMIN_MYSQL_URL, STRANGLER_ADMIN_TOKEN, STRANGLER_STATE_TOKEN
  monitor    MySQL metrics in mysqld_exporter's names: MONITOR_MYSQL_URL, PORT (default 9104)
  router     One Event Router (router/main.ts: ROUTER_MYSQL_URL, ROUTER_REGION, …)
  scheduler  One Scheduler V2 replica (scheduler/main.ts: SCHEDULER_V2_MYSQL_URL, …)
  harpoon    One Harpoon replica (harpoon/main.ts: HARPOON_MYSQL_URL, HARPOON_TOKENS, …)
  cloud      The droplet API with its legacy direct event path (legacy/cloud/main.ts: CLOUD_MYSQL_URL, …)

Options:
  --config FILE      proxy, admin: the proxy config (schemas/proxy-config.schema.json)
  --plan FILE        admin: the cutover plan (schemas/plan.schema.json)
  --check            proxy: validate the config and exit (0 valid, 2 invalid)
  --port P, --host H admin, monitor: where to listen (the proxy's come from its config)
  --watch-interval-ms N  admin: how often the soak watcher reads the gates (default 3000)
  --seconds S        Stop after S seconds (default: until SIGTERM)
  --json             One JSON line when up ({ service, url, … }); invalid files as JSON
  -h, --help         This text ("strangler serve <service> --help" for its environment)

Exit codes: 0 stopped cleanly; 1 failed; 2 bad usage or an invalid config/plan
(each problem named by its JSON path and value).

Example:
  PROXY_MYSQL_URL=mysql://proxy:…@db:3306/cutover strangler serve proxy --config /etc/strangler/proxy.json
`;

/** The doc comment at the top of a service's main.ts: its environment, kept in one place. */
function mainHelp(service: string): string {
  const path = fileURLToPath(new URL(MAINS[service]!, import.meta.url));
  const doc = /^\/\*\*([\s\S]*?)\*\//.exec(readFileSync(path, 'utf8'))?.[1] ?? '';
  const body = doc
    .split('\n')
    .map((l) => l.replace(/^\s*\* ?/, ''))
    .join('\n')
    .trim();
  return `Usage: strangler serve ${service} [--json] [--seconds S]\n\n${body.replace(/node --import tsx \S+/g, `strangler serve ${service}`)}\n`;
}

const SERVICE_HELP: Record<string, () => string> = {
  proxy: () => `Usage: strangler serve proxy --config FILE [--check] [--json] [--seconds S]\n\nThe same as "strangler proxy"; see "strangler proxy --help".\n`,
  admin: () =>
    'Usage: strangler serve admin --plan FILE [--config FILE] [--port P] [--host H] [--watch-interval-ms N] [--json]\n\n' +
    'The cutover admin API: state and history in MySQL, the soak watcher, the gates (scraping the\n' +
    'config\'s "services"). Environment:\n' +
    '  ADMIN_MYSQL_URL        mysql://<user>:<password>@host:port/<database> (required; "strangler db migrate" it first)\n' +
    '  STRANGLER_ADMIN_TOKEN  the operator token, every scope (required, at least 16 characters)\n' +
    '  STRANGLER_STATE_TOKEN  a read-only token for followers (proxies with state.admin, routers)\n' +
    '  ADMIN_PLAN_FILE, PROXY_CONFIG_FILE, PORT (default 9400), HOST (default 127.0.0.1), LOG_LEVEL\n',
  monitor: () =>
    'Usage: strangler serve monitor [--port P] [--host H] [--json]\n\n' +
    'MySQL connection and processlist metrics in mysqld_exporter\'s names. Environment:\n' +
    '  MONITOR_MYSQL_URL  mysql://strangler_monitor:<password>@host:port/<database> (PROCESS privilege; the\n' +
    '                     database part limits per-schema counts)\n' +
    '  PORT (default 9104), HOST (default 127.0.0.1), LOG_LEVEL\n',
};

async function runMonitor(io: CommandIO, port: string | undefined, host: string | undefined, json: boolean, seconds: number | undefined): Promise<number> {
  const url = io.env.MONITOR_MYSQL_URL;
  if (!url) throw new UsageError('set MONITOR_MYSQL_URL to mysql://<user>:<password>@host:port/<database> (a user with PROCESS)');
  const db = parseMysqlUrl(url);
  const monitor = createMonitor({ db, ...(db.database ? { database: db.database } : {}), logger: cliLogger(io.env), port: intOption('port', port ?? io.env.PORT, 9104, 0, 65535), host: host ?? io.env.HOST ?? '127.0.0.1' });
  try {
    const started = await monitor.start();
    io.stdout.write(json ? JSON.stringify({ service: 'monitor', url: started.url }) + '\n' : `monitor listening on ${started.url}/metrics\n`);
    await waitForStop(io.signal, seconds);
    return EXIT.ok;
  } finally {
    await monitor.close();
  }
}

export const command: Command = {
  name: 'serve',
  summary: 'run one service by itself (proxy, admin, monitor, router, scheduler, harpoon, cloud) from its config and environment',
  help: HELP,
  async run(argv, io) {
    const [service, ...rest] = argv;
    if (service === undefined || service === '--help' || service === '-h' || service === 'help') {
      io.stdout.write(HELP);
      return service === undefined ? EXIT.usage : EXIT.ok;
    }
    if (!SERVICES.includes(service)) throw new UsageError(`unknown service "${service}"; the services are ${SERVICES.join(', ')}`);
    const { values, positionals } = parseCommandArgs(rest, {
      config: { type: 'string' },
      plan: { type: 'string' },
      check: { type: 'boolean' },
      port: { type: 'string' },
      host: { type: 'string' },
      'watch-interval-ms': { type: 'string' },
      seconds: { type: 'string' },
    });
    if (values.help) {
      io.stdout.write(MAINS[service] ? mainHelp(service) : SERVICE_HELP[service]!());
      return EXIT.ok;
    }
    if (positionals.length > 0) throw new UsageError(`serve ${service} takes no arguments, got "${positionals[0]}"`);
    const json = Boolean(values.json);
    const seconds = values.seconds === undefined ? undefined : intOption('seconds', values.seconds, 1, 1);
    switch (service) {
      case 'proxy':
        return runProxyFromFile(io, { file: configPath(values.config, io.env, true)!, json, check: Boolean(values.check), ...(seconds !== undefined ? { seconds } : {}) });
      case 'admin':
        return runAdminFromFiles(io, { plan: values.plan, config: values.config, port: values.port, host: values.host, watchIntervalMs: values['watch-interval-ms'], json, ...(seconds !== undefined ? { seconds } : {}) });
      case 'monitor':
        return runMonitor(io, values.port, values.host, json, seconds);
      default: {
        // The service's own main reads process.env, listens, and stops itself on SIGTERM.
        if (json) io.stdout.write(JSON.stringify({ service, main: fileURLToPath(new URL(MAINS[service]!, import.meta.url)), pid: process.pid }) + '\n');
        // As with Cloud: a router served here may run in any stage, so it gets the MySQL-polling source for
        // the stages before event-writes reaches full (unless the environment names another).
        if (service === 'router') process.env.ROUTER_LEGACY_SOURCE ??= MYSQL_SOURCE_MODULE;
        await import(MAINS[service]!);
        await waitForStop(io.signal, seconds);
        return EXIT.ok;
      }
    }
  },
};
