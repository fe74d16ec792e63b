import { StranglerError } from '../../lib/errors.ts';
import { loadProxyConfigFile } from '../../proxy/config.ts';
import { createConfiguredProxy } from '../../proxy/from-config.ts';
import { cliLogger } from '../cli-logger.ts';
import { EXIT, UsageError, reportInvalidFile, waitForStop, writeJson, type CommandIO } from '../command.ts';

/** The config file: --config, else PROXY_CONFIG_FILE. */
export function configPath(value: string | undefined, env: NodeJS.ProcessEnv, required: boolean): string | undefined {
  const path = value ?? env.PROXY_CONFIG_FILE;
  if (!path && required) throw new UsageError('name the proxy config: --config FILE (or PROXY_CONFIG_FILE)');
  return path || undefined;
}

/**
 * `strangler proxy` / `strangler serve proxy`: validates the config (exit 2
 * naming each bad JSON path), starts its workers, says which pool instances
 * fail their first health check, and runs until SIGTERM or `seconds`.
 */
export async function runProxyFromFile(io: CommandIO, options: { file: string; json: boolean; check: boolean; seconds?: number }): Promise<number> {
  let config;
  try {
    config = loadProxyConfigFile(options.file);
  } catch (err) {
    if (err instanceof StranglerError && err.code === 'PROXY_ERR_INVALID_CONFIG') return reportInvalidFile(io, options.json, 'proxy config', options.file, err);
    throw err;
  }
  const features = Object.keys(config.features);
  if (options.check) {
    if (options.json) writeJson(io, { valid: true, file: options.file, features });
    else io.stdout.write(`${options.file} is a valid proxy config: features ${features.join(', ')}\n`);
    return EXIT.ok;
  }
  let proxy;
  try {
    proxy = createConfiguredProxy({ config, env: io.env, logger: cliLogger(io.env) });
  } catch (err) {
    // A state source whose token or database URL variable is not set: fixed by the environment, like a bad file.
    if (err instanceof StranglerError && err.code === 'CONFIG_ERR_INVALID_OPTION') {
      io.stderr.write(`strangler: ${err.code}: ${err.message}\n`);
      return EXIT.usage;
    }
    throw err;
  }
  try {
    const started = await proxy.start();
    const workers = proxy.cluster.workers().length;
    if (options.json) {
      io.stdout.write(JSON.stringify({ service: 'proxy', url: started.url, admin_url: started.adminUrl ?? null, workers, features, unready_upstreams: started.unready }) + '\n');
    } else {
      io.stdout.write(`proxy listening on ${started.url} (${workers} worker${workers === 1 ? '' : 's'}; features ${features.join(', ')})\n`);
      if (started.adminUrl) io.stdout.write(`admin port ${started.adminUrl}: /metrics (every worker), /admin/shadow/samples, /admin/upstreams (token)\n`);
      for (const u of started.unready) {
        io.stdout.write(`unready: ${u.feature} ${u.target} pool instance ${u.instance} fails its health check (GET ${u.health_path}); it gets traffic again once the check passes\n`);
      }
    }
    await waitForStop(io.signal, options.seconds);
    return EXIT.ok;
  } finally {
    await proxy.close();
  }
}
