import { EXIT, UsageError, parseCommandArgs, readAll, writeJson, type Command, type CommandIO } from '../command.ts';
import {
  V1_BUSY_TYPES,
  rankV1,
  type V1BusyList,
  type V1RankInput,
  type V1RankResult,
  type V1Request,
  type V1Server,
} from '../../legacy/scheduler-v1/rank.ts';

const EXAMPLE_INPUT = {
  servers: [
    { id: 1, name: 'hv-01', region_id: 1, cpus: 24, memory: 131072, disk: 2000, vmcount: 10, memfree: 65536, diskfree_actual: 1500, error_count: 5, state: '' },
    { id: 2, name: 'hv-02', region_id: 1, cpus: 24, memory: 131072, disk: 2000, vmcount: 12, memfree: 32768, diskfree_actual: 1500, error_count: 0, state: '' },
  ],
  request: { event_id: 1001, customer_id: 42, region_id: 1, size: { slug: '2gb', memory: 2048, vcpus: 2, disk: 40 } },
  busy: {},
  user_droplets: {},
};

const HELP = `Usage: strangler scheduler v1-rank [--json] < input.json

Runs Scheduler V1's host ranking (a faithful port of the 2016 Perl) on the
JSON read from stdin and prints the decision, the skipped servers and the
exact log lines the Perl would have printed. Output is always JSON; --json
is accepted and means the same. \`jq -r '.log[]'\` gives the Perl log.

Input (memory in MB, disk in GB):
  servers        V1Server[] {id, name, region_id, cpus, memory, disk, vmcount,
                 memfree, diskfree_actual, error_count, state}; only those in
                 request.region_id are ranked, in the order given
  request        {event_id?, customer_id, region_id, size: {slug, memory, vcpus, disk}}
  busy           {"<server name>": {"create"|"restore"|"pdu_reboot"|"ipmi_reboot"|"node_unresponsive": <event id>}}
  user_droplets  {"<server id>": <this customer's droplet count>}
  overcommit     optional, default 4: a server is full when vmcount > cpus * overcommit

Decision: place on the valid server with the most memfree (ties: fewer VMs,
then lowest id); else on the highest-id server already holding the customer's
droplets; else wait if a server was only busy with a create/restore; else fail.

Options:
  --json       print JSON (the default; accepted for uniformity)
  -h, --help   show this help

Exit codes: 0 ranked (even when the decision is wait or fail), 2 bad usage or bad input.

Example:
  echo '${JSON.stringify(EXAMPLE_INPUT)}' \\
    | strangler scheduler v1-rank --json
  # => "decision": { "action": "place", "server_id": 2, "server_name": "hv-02", "reason": "best-memfree" }
  #    "log": [ "\\tSKIP hv-01        region=1 memfree=  65536 diskfree_actual=  1500 TOO MANY ERRORS: errors=5" ]

See runbooks/scheduler-v1-ranking.md.
`;

export const command: Command = {
  name: 'scheduler',
  summary: 'Scheduler tools: v1-rank runs the legacy Perl ranking on a JSON snapshot',
  help: HELP,
  async run(argv: string[], io: CommandIO): Promise<number> {
    try {
      const { values, positionals } = parseCommandArgs(argv, {});
      if (values.help) {
        io.stdout.write(HELP);
        return EXIT.ok;
      }
      const [verb, ...extra] = positionals;
      if (verb !== 'v1-rank') {
        throw new UsageError(verb === undefined ? 'missing sub-verb: expected "v1-rank"' : `unknown sub-verb "${verb}": expected "v1-rank"`);
      }
      if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
      // Without this, a forgotten pipe looks like a hang.
      if ((io.stdin as { isTTY?: boolean }).isTTY) throw new UsageError('pipe the input JSON on stdin (see --help)');
      writeJson(io, runV1RankJson(await readAll(io.stdin)));
      return EXIT.ok;
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      io.stderr.write(`strangler scheduler: ${err.message}\n`);
      return EXIT.usage;
    }
  },
};

/** Parses the stdin text and ranks. Throws UsageError naming the first bad field. */
export function runV1RankJson(text: string): V1RankResult {
  if (text.trim() === '') throw new UsageError('stdin is empty: expected a JSON object (see --help)');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`stdin is not valid JSON: ${(err as Error).message}`);
  }
  return runV1Rank(parsed);
}

/** Validates an already-parsed input and ranks. Throws UsageError naming the first bad field. */
export function runV1Rank(input: unknown): V1RankResult {
  return rankV1(parseV1RankInput(input));
}

export function parseV1RankInput(input: unknown): V1RankInput {
  const root = object(input, 'input');
  const servers = field(root, 'servers', 'input');
  if (!Array.isArray(servers)) throw bad('servers', 'an array', servers);
  const overcommit = root['overcommit'];
  if (overcommit !== undefined && !(typeof overcommit === 'number' && Number.isFinite(overcommit) && overcommit > 0)) {
    throw bad('overcommit', 'a number > 0', overcommit);
  }
  return {
    servers: servers.map((s, i) => parseServer(s, `servers[${i}]`)),
    request: parseRequest(field(root, 'request', 'input'), 'request'),
    busy: parseBusy(field(root, 'busy', 'input'), 'busy'),
    user_droplets: parseCounts(field(root, 'user_droplets', 'input'), 'user_droplets'),
    ...(overcommit === undefined ? {} : { overcommit }),
  };
}

type Json = Record<string, unknown>;

function bad(path: string, expected: string, got: unknown): UsageError {
  return new UsageError(`${path} must be ${expected}, got ${got === undefined ? 'nothing' : JSON.stringify(got)}`);
}

function object(value: unknown, path: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(path, 'an object', value);
  return value as Json;
}

function field(obj: Json, key: string, path: string): unknown {
  if (!Object.hasOwn(obj, key)) throw new UsageError(`${path === 'input' ? key : `${path}.${key}`} is missing`);
  return obj[key];
}

function num(obj: Json, key: string, path: string, integer = false): number {
  const v = field(obj, key, path);
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw bad(`${path}.${key}`, integer ? 'an integer' : 'a number', v);
  }
  return v;
}

function str(obj: Json, key: string, path: string): string {
  const v = field(obj, key, path);
  if (typeof v !== 'string') throw bad(`${path}.${key}`, 'a string', v);
  return v;
}

function parseServer(value: unknown, path: string): V1Server {
  const s = object(value, path);
  return {
    id: num(s, 'id', path, true),
    name: str(s, 'name', path),
    region_id: num(s, 'region_id', path, true),
    cpus: num(s, 'cpus', path),
    memory: num(s, 'memory', path),
    disk: num(s, 'disk', path),
    vmcount: num(s, 'vmcount', path),
    memfree: num(s, 'memfree', path),
    diskfree_actual: num(s, 'diskfree_actual', path),
    error_count: num(s, 'error_count', path),
    state: serverState(s, path),
  };
}

/** SQL NULL reaches Perl as undef, and `undef ne ""` is false: a NULL state means in service. */
function serverState(s: Json, path: string): string {
  const state = field(s, 'state', path);
  if (state === null) return '';
  if (typeof state !== 'string') throw bad(`${path}.state`, 'a string or null', state);
  return state;
}

function parseRequest(value: unknown, path: string): V1Request {
  const r = object(value, path);
  const size = object(field(r, 'size', path), `${path}.size`);
  const sizePath = `${path}.size`;
  const request: V1Request = {
    customer_id: num(r, 'customer_id', path, true),
    region_id: num(r, 'region_id', path, true),
    size: {
      slug: str(size, 'slug', sizePath),
      memory: num(size, 'memory', sizePath),
      vcpus: num(size, 'vcpus', sizePath),
      disk: num(size, 'disk', sizePath),
    },
  };
  if (r['event_id'] !== undefined) request.event_id = num(r, 'event_id', path, true);
  return request;
}

// Object.fromEntries, not assignment: a "__proto__" key must stay a plain key.
function parseBusy(value: unknown, path: string): V1BusyList {
  return Object.fromEntries(
    Object.entries(object(value, path)).map(([name, types]) => {
      const typesPath = `${path}[${JSON.stringify(name)}]`;
      const entry = object(types, typesPath);
      // Other event types (resize, destroy, …) may sit in a real busylist; the Perl never looks at them.
      const known = V1_BUSY_TYPES.filter((type) => Object.hasOwn(entry, type));
      return [name, Object.fromEntries(known.map((type) => [type, num(entry, type, typesPath, true)]))];
    }),
  );
}

function parseCounts(value: unknown, path: string): Record<string, number> {
  return Object.fromEntries(
    Object.entries(object(value, path)).map(([serverId, count]) => {
      if (!/^\d+$/.test(serverId)) throw new UsageError(`${path} keys must be server ids, got ${JSON.stringify(serverId)}`);
      if (typeof count !== 'number' || !Number.isInteger(count) || count < 0) {
        throw bad(`${path}[${JSON.stringify(serverId)}]`, 'a droplet count (integer >= 0)', count);
      }
      return [serverId, count];
    }),
  );
}
