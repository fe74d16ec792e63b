import { EXIT, UsageError, intOption, parseCommandArgs, type Command } from '../command.ts';
import { configPath, runProxyFromFile } from '../serve/run-proxy.ts';

const HELP = `Usage: strangler proxy --config FILE [--check] [--json] [--seconds S]

Runs the strangler proxy in front of any HTTP services, from a declarative
config: features -> routes (method, path pattern) -> legacy and new targets
(pools, regions, health paths), sticky keys, shadow compare rules, and where
the cutover state comes from (the admin over HTTP, MySQL, or fixed). The file
is validated first: every problem is named by its JSON path and bad value
(exit 2). A target that fails its first health check starts unready (its
instances out of rotation) and is named; it rejoins once its checks pass.
Editors validate with schemas/proxy-config.schema.json; examples/ has one.

Options:
  --config FILE   The config (default: PROXY_CONFIG_FILE)
  --check         Validate only: 0 valid, 2 invalid
  --seconds S     Stop after S seconds (default: until SIGTERM/SIGINT)
  --json          One JSON line when up: { service, url, admin_url, workers, features, unready_upstreams }
  -h, --help      This text

Environment: the variable the config's state names (STRANGLER_STATE_TOKEN for
state.admin, PROXY_MYSQL_URL for state.mysql), STRANGLER_ADMIN_TOKEN for the
config's admin port (shadow samples), LOG_LEVEL.

Example:
  STRANGLER_STATE_TOKEN=… strangler proxy --config examples/nginx-and-node/proxy.json
`;

export const command: Command = {
  name: 'proxy',
  summary: 'run the strangler proxy in front of any HTTP services from a config file',
  help: HELP,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, { config: { type: 'string' }, check: { type: 'boolean' }, seconds: { type: 'string' } });
    if (values.help) {
      io.stdout.write(HELP);
      return EXIT.ok;
    }
    if (positionals.length > 0) throw new UsageError(`proxy takes no arguments, got "${positionals[0]}"`);
    const seconds = values.seconds === undefined ? undefined : intOption('seconds', values.seconds, 1, 1);
    return runProxyFromFile(io, { file: configPath(values.config, io.env, true)!, json: Boolean(values.json), check: Boolean(values.check), ...(seconds !== undefined ? { seconds } : {}) });
  },
};
