// Mutation testing of the code that carries the project's promises (issue 17; docs/mutation-testing.md).
// `npm run test:mutation` runs every module below; `npm run test:mutation:changed` only those changed
// against main. MUTATE=a.ts,b.ts narrows a run by hand. Reports go to reports/mutation/ (not committed).
//
// Each module lists the tests that exercise it in-process: a mutant is only active in this process, so
// tests that reach the module through a child process (kill tests, CLI tests) cannot kill it, and
// whole-stack tests would restart a stack for every mutant. `survivors` holds the mutants left alive on
// purpose, each with a one-line reason (equivalent, or harmless to the promise); add a test before
// adding a line there.

/** @type {Array<{ file: string, guards: string, tests: string[], survivors?: Array<{ line: number, mutant: string, reason: string }> }>} */
export const modules = [
  {
    file: 'lib/cutover/decide.ts',
    guards: 'who goes to the new path: canary buckets shared by the proxy and the agents',
    tests: ['test/lib/cutover/decide.test.ts'],
    survivors: [],
  },
  {
    file: 'lib/auth/hypervisor-token.ts',
    guards: 'a hypervisor token names one host in one region, expires, and can be revoked',
    tests: ['test/lib/auth/hypervisor-token.test.ts'],
    survivors: [],
  },
  {
    file: 'lib/auth/admin-token.ts',
    guards: 'admin scopes: a follower token cannot move the plan, only lockdown may GRANT/REVOKE',
    tests: ['test/lib/auth/admin-token.test.ts'],
    survivors: [],
  },
  {
    file: 'scheduler/placement.ts',
    guards: 'no host over-committed: the compare-and-swap re-checks capacity in MySQL',
    tests: ['test/scheduler/race.test.ts', 'test/scheduler/scheduler-v2.test.ts'],
    survivors: [],
  },
  {
    file: 'scheduler/claims.ts',
    guards: 'Scheduler V2 places each event once: replicas claim regions/events',
    tests: ['test/scheduler/race.test.ts', 'test/scheduler/scheduler-v2.test.ts'],
  },
  {
    file: 'legacy/dobe/execute.ts',
    guards: "the agent's claim (status = 'pending') and execution: none executed twice",
    tests: ['test/dobe/agent.test.ts'],
  },
  {
    file: 'dobe/completion.ts',
    guards: "the agent's completion report",
    tests: ['test/dobe/agent.test.ts'],
  },
  {
    file: 'domain/completion.ts',
    guards: 'which statuses end an event',
    tests: ['test/dobe/agent.test.ts'],
  },
  {
    file: 'router/acks.ts',
    guards: "the router's claims, acks and redelivery: no event lost",
    tests: ['test/router/router.test.ts'],
  },
  {
    file: 'router/completion.ts',
    guards: "a hypervisor's completion through the router",
    tests: ['test/router/router.test.ts'],
  },
  {
    file: 'harpoon/group-commit.ts',
    guards: "Harpoon's group commit: an acknowledged write is durable",
    tests: ['test/harpoon/writes.test.ts'],
  },
  {
    file: 'harpoon/write-batch.ts',
    guards: "Harpoon's write batch: each write once, in order",
    tests: ['test/harpoon/writes.test.ts'],
  },
  {
    file: 'harpoon/change-log.ts',
    guards: 'the change log every subscriber resumes from',
    tests: ['test/harpoon/writes.test.ts', 'test/harpoon/stream.test.ts'],
  },
  {
    file: 'harpoon/stream.ts',
    guards: 'the stream cursor: a subscriber gets every change once and in order',
    tests: ['test/harpoon/stream.test.ts'],
  },
  {
    file: 'harpoon/lockdown.ts',
    guards: 'only Harpoon on the event data (GRANT/REVOKE)',
    tests: ['test/harpoon/lockdown.test.ts'],
  },
  {
    file: 'cloud/outbox.ts',
    guards: "Cloud's outbox: a droplet's event is written with it or not at all",
    tests: ['test/cloud/event-writes.test.ts'],
  },
  {
    file: 'cloud/relay.ts',
    guards: 'the outbox relay hands each event to Harpoon once',
    tests: ['test/cloud/event-writes.test.ts'],
  },
  {
    file: 'proxy/cutover/gates.ts',
    guards: 'a cutover only moves when its gates pass',
    tests: ['test/proxy/cutover/gates.test.ts', 'test/proxy/cutover/providers.test.ts'],
  },
  {
    file: 'proxy/cutover/controller.ts',
    guards: 'cutover controller transitions (advance, rollback, pause)',
    tests: ['test/proxy/cutover/api.test.ts', 'test/proxy/cutover/plan.test.ts'],
  },
];

const wanted = process.env.MUTATE ? process.env.MUTATE.split(',').map((f) => f.trim()).filter(Boolean) : undefined;
const unknown = (wanted ?? []).filter((f) => !modules.some((m) => m.file === f));
if (unknown.length > 0) throw new Error(`MUTATE names files not in stryker.config.mjs's module list: ${unknown.join(', ')}`);
const selected = wanted ? modules.filter((m) => wanted.includes(m.file)) : modules;

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts', related: true },
  plugins: ['@stryker-mutator/vitest-runner', '@stryker-mutator/typescript-checker'],
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.json',
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  coverageAnalysis: 'perTest',
  mutate: selected.map((m) => m.file),
  testFiles: [...new Set(selected.flatMap((m) => m.tests))],
  // Two cores shared with the database: more runners only queue.
  concurrency: 2,
  timeoutMS: 30_000,
  timeoutFactor: 2,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: 'reports/mutation/.stryker-tmp',
  cleanTempDir: true,
  thresholds: { high: 90, low: 85, break: null },
};
