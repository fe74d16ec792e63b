import { StranglerError } from '../lib/errors.ts';
import { EXIT, UsageError, type Command, type CommandIO } from './command.ts';
/**
 * Each verb's module is loaded only when it runs: one verb's imports, not
 * every service's, so a CLI call starts in about half the time.
 */
const LOADERS: Record<string, () => Promise<Command>> = {
  up: async () => (await import('./commands/up.ts')).command,
  demo: async () => (await import('./commands/demo.ts')).command,
  db: async () => (await import('./commands/db.ts')).command,
  fleet: async () => (await import('./commands/fleet.ts')).command,
  scheduler: async () => (await import('./commands/scheduler.ts')).command,
  cutover: async () => (await import('./commands/cutover.ts')).command,
  replay: async () => (await import('./commands/replay.ts')).command,
  proxy: async () => (await import('./commands/proxy.ts')).command,
  serve: async () => (await import('./commands/serve.ts')).command,
  chaos: async () => (await import('../chaos/cli.ts')).command,
  secrets: async () => (await import('./commands/secrets.ts')).command,
};

export const COMMAND_NAMES = Object.keys(LOADERS);

/** Every verb, loaded (the top-level --help lists their summaries). */
export async function loadCommands(): Promise<Command[]> {
  return Promise.all(COMMAND_NAMES.map((name) => LOADERS[name]!()));
}

async function usage(): Promise<string> {
  const commands = await loadCommands();
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'Usage: strangler <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Every command takes --help and --json. Exit codes: 0 ok, 1 failed, 2 bad usage, 3 precondition not met.',
    'Database: MYSQL_URL if set, else a server on 127.0.0.1:3306, else (up, demo) a throwaway mariadbd.',
  ].join('\n');
}

/**
 * Runs one CLI invocation and returns its exit code.
 *
 * @example
 *   process.exitCode = await main(['db', 'migrate', '--json']);
 */
export async function main(argv: string[], io?: Partial<CommandIO>): Promise<number> {
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const fullIo: CommandIO = {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    signal: controller.signal,
    ...io,
  };
  const [name, ...rest] = argv;
  try {
    if (!name || name === '--help' || name === '-h' || name === 'help') {
      fullIo.stdout.write((await usage()) + '\n');
      return name ? EXIT.ok : EXIT.usage;
    }
    const load = Object.hasOwn(LOADERS, name) ? LOADERS[name] : undefined;
    if (!load) {
      fullIo.stderr.write(`strangler: unknown command "${name}"\n\n${await usage()}\n`);
      return EXIT.usage;
    }
    const cmd = await load();
    return await cmd.run(rest, fullIo);
  } catch (err) {
    if (err instanceof UsageError) {
      fullIo.stderr.write(`strangler ${name}: ${err.message}\nRun "strangler ${name} --help" for usage.\n`);
      return EXIT.usage;
    }
    if (err instanceof StranglerError) {
      fullIo.stderr.write(`strangler ${name}: ${err.code}: ${err.message}\n`);
      return err.code.startsWith('DB_ERR') ? EXIT.precondition : EXIT.failed;
    }
    fullIo.stderr.write(`strangler ${name}: ${(err as Error).stack ?? String(err)}\n`);
    return EXIT.failed;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
