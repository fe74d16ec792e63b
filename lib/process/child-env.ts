/**
 * The environment a child process starts with: a short allow-list of what
 * any Node process needs to run (PATH, locale, temp dir, node's own
 * settings), plus what the parent hands it on purpose. Nothing else of the
 * operator's environment crosses: not MYSQL_URL (root's URL), not
 * STRANGLER_ADMIN_TOKEN, not a secrets file path. A router that is
 * compromised then holds its own credentials and nothing more.
 *
 * Every key of the parent's environment not allowed is present with the
 * value `undefined`: spawn/fork skip such keys, and cluster.fork, which
 * merges process.env into whatever it is given, is overridden by them.
 */
const ALLOWED = new Set(['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'TEMP', 'TMP', 'NODE_ENV', 'NODE_OPTIONS', 'NODE_EXTRA_CA_CERTS', 'LOG_LEVEL', 'SYSTEMROOT']);

/**
 * @example
 *   spawn(process.execPath, [main], { env: childEnv({ ROUTER_MYSQL_URL: url }) });
 *   cluster.fork(childEnv({}));
 */
export function childEnv(extra: Record<string, string>, parent: NodeJS.ProcessEnv = process.env): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const [key, value] of Object.entries(parent)) env[key] = ALLOWED.has(key) ? value : undefined;
  return { ...env, ...extra };
}
