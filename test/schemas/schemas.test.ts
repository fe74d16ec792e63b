import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { validateProxyConfig } from '../../proxy/config.ts';
import { DEFAULT_PLAN_URL, validatePlan } from '../../proxy/cutover/plan.ts';

const ROOT = new URL('../../', import.meta.url);
const json = (path: string | URL): unknown => JSON.parse(readFileSync(typeof path === 'string' ? new URL(path, ROOT) : path, 'utf8'));
const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true });
const planSchema = ajv.compile(json('schemas/plan.schema.json') as object);
const configSchema = ajv.compile(json('schemas/proxy-config.schema.json') as object);

const accepts = (validate: (doc: unknown) => unknown, doc: unknown): boolean => {
  try {
    validate(doc);
    return true;
  } catch {
    return false;
  }
};

type Mutation = [string, (d: Record<string, any>) => void];

function clone<T>(doc: T): T {
  return structuredClone(doc);
}

const goodPlan = (): Record<string, any> => ({
  version: 1,
  analysis: { interval_seconds: 5, passes: 2, failure_threshold: 2, on_failure: 'legacy', after_soak: 'alert' },
  webhooks: [{ name: 'chat', type: 'notify', url: 'https://hooks.example/x', format: 'slack', events: ['rollback'] }],
  features: {
    catalog: {
      steps: [
        { name: 'shadow', mode: 'shadow', soak_seconds: 10, gates: [{ kind: 'shadow_mismatch_rate', service: 'proxy', mismatches: "m_total{result='mismatch'}", total: 'm_total', max: 0.1 }] },
        { name: 'canary-10', mode: 'canary', percent: 10, regions: ['nyc1'], soak_seconds: 10, manual_judgement: true, gates: [{ kind: 'latency', service: 'proxy', histogram: 'h_seconds', max_seconds: 0.5 }] },
        {
          name: 'full',
          mode: 'full',
          soak_seconds: 60,
          requires: { catalog: 'canary' },
          gates: [
            { kind: 'error_rate', service: 'proxy', errors: "r_total{status=~'5..'}", total: 'r_total', max: 0.01, min_samples: 10 },
            { kind: 'gauge', service: 'new', metric: 'queue_depth', aggregate: 'max', max: 100 },
            { kind: 'prometheus', service: 'prometheus', query: 'sum(rate(x[1m]))', max: 5 },
            { kind: 'web', service: 'status', path: '/stats', json_path: 'queue.depth', max: 10 },
            { kind: 'invariant', check: 'lost_events' },
            { kind: 'budget', max_connections: 50, users: ['proxy'] },
          ],
        },
      ],
    },
  },
});

/** Mutations both must refuse: what a schema can say. */
const BAD_PLANS: Mutation[] = [
  ['version 2', (p) => (p.version = 2)],
  ['unknown top-level field', (p) => (p.extra = true)],
  ['no features', (p) => (p.features = {})],
  ['a feature name with a space', (p) => (p.features['Bad Name'] = p.features.catalog)],
  ['no steps', (p) => (p.features.catalog.steps = [])],
  ['an unknown mode', (p) => (p.features.catalog.steps[0].mode = 'blue-green')],
  ['a step named legacy', (p) => (p.features.catalog.steps[0].name = 'legacy')],
  ['a negative soak', (p) => (p.features.catalog.steps[0].soak_seconds = -1)],
  ['a soak as a string', (p) => (p.features.catalog.steps[0].soak_seconds = '10')],
  ['percent 0', (p) => (p.features.catalog.steps[1].percent = 0)],
  ['a canary without percent or regions', (p) => (delete p.features.catalog.steps[1].percent, delete p.features.catalog.steps[1].regions)],
  ['percent on a shadow step', (p) => (p.features.catalog.steps[0].percent = 5)],
  ['a region twice', (p) => (p.features.catalog.steps[1].regions = ['nyc1', 'nyc1'])],
  ['gates not an array', (p) => (p.features.catalog.steps[0].gates = {})],
  ['an unknown gate kind', (p) => (p.features.catalog.steps[0].gates[0].kind = 'vibes')],
  ['a gate missing a field', (p) => delete p.features.catalog.steps[2].gates[0].errors],
  ['a gate with an unknown field', (p) => (p.features.catalog.steps[2].gates[0].typo = 1)],
  ['an error rate max over 1', (p) => (p.features.catalog.steps[2].gates[0].max = 5)],
  ['a gauge without bounds', (p) => delete p.features.catalog.steps[2].gates[1].max],
  ['a latency histogram named by its buckets', (p) => (p.features.catalog.steps[1].gates[0].histogram = 'h_seconds_bucket')],
  ['an invalid service name', (p) => (p.features.catalog.steps[2].gates[0].service = 'Not A Service')],
  ['an unknown invariant', (p) => (p.features.catalog.steps[2].gates[4].check = 'vibes')],
  ['a budget without limits', (p) => delete p.features.catalog.steps[2].gates[5].max_connections],
  ['a web gate path without /', (p) => (p.features.catalog.steps[2].gates[3].path = 'stats')],
  ['on_failure elsewhere', (p) => (p.analysis.on_failure = 'elsewhere')],
  ['passes 0', (p) => (p.analysis.passes = 0)],
  ['a webhook of an unknown type', (p) => (p.webhooks[0].type = 'page')],
  ['a webhook to ftp', (p) => (p.webhooks[0].url = 'ftp://x')],
  ['events on a confirm webhook', (p) => (p.webhooks[0].type = 'confirm')],
  ['manual_judgement as a string', (p) => (p.features.catalog.steps[1].manual_judgement = 'yes')],
  ['requires an unknown mode', (p) => (p.features.catalog.steps[2].requires.catalog = 'half')],
];

const goodConfig = (): Record<string, any> => ({
  version: 1,
  listen: { host: '0.0.0.0', port: 8000 },
  workers: 2,
  admin: { port: 8001, tokenEnv: 'PROXY_ADMIN_TOKEN' },
  state: { admin: { url: 'http://admin.internal:9400', tokenEnv: 'STATE_TOKEN', intervalMs: 1000 } },
  healthCheck: { path: '/healthz', intervalMs: 1000, unhealthyThreshold: 2 },
  shadow: { samples: 20, compare: { ignore: ['*.at'] } },
  features: {
    catalog: {
      legacy: { urls: ['http://10.0.0.5:8080'], healthPath: '/status' },
      new: ['http://10.0.0.9:3000', 'http://10.0.0.10:3000'],
      routes: [
        { method: 'GET', path: '/catalog/:sku', stickyBy: { header: 'x-customer-id' } },
        { method: ['PUT', 'DELETE'], path: '/catalog/:sku', stickyBy: { param: 'sku' }, responseTimeoutMs: 5000 },
      ],
      compare: { ignore: ['$.served_at'], unordered: [{ path: '$.items', by: 'id' }] },
    },
    streams: {
      legacy: { byRegion: { nyc1: ['http://10.0.1.5:8080'] } },
      new: { byRegion: { nyc1: ['http://10.0.1.9:7000'] } },
      routes: [{ method: 'GET', path: '/v1/regions/:region/events', region: { param: 'region' }, stickyBy: 'bearer' }],
    },
  },
  services: { proxy: 'http://proxy.internal:8001', new: ['http://10.0.0.9:3000'] },
});

const BAD_CONFIGS: Mutation[] = [
  ['version 2', (c) => (c.version = 2)],
  ['unknown top-level field', (c) => (c.typo = 1)],
  ['no state', (c) => delete c.state],
  ['two state sources', (c) => (c.state = { admin: c.state.admin, mysql: {} })],
  ['an unknown state source', (c) => (c.state = { redis: {} })],
  ['a state URL that is not http', (c) => (c.state.admin.url = 'ftp://x')],
  ['a token variable in lower case', (c) => (c.state.admin.tokenEnv = 'token')],
  ['port 70000', (c) => (c.listen.port = 70000)],
  ['workers 0', (c) => (c.workers = 0)],
  ['an admin port without port', (c) => delete c.admin.port],
  ['no features', (c) => (c.features = {})],
  ['a feature name in capitals', (c) => (c.features.Catalog = c.features.catalog)],
  ['a feature without routes', (c) => delete c.features.catalog.routes],
  ['a feature with an unknown field', (c) => (c.features.catalog.weight = 5)],
  ['a lower-case method', (c) => (c.features.catalog.routes[0].method = 'get')],
  ['a path without /', (c) => (c.features.catalog.routes[0].path = 'catalog')],
  ['a route on /metrics', (c) => (c.features.catalog.routes[0].path = '/metrics')],
  ['an https upstream', (c) => (c.features.catalog.new = ['https://10.0.0.9'])],
  ['an empty pool', (c) => (c.features.catalog.new = [])],
  ['a healthPath without /', (c) => (c.features.catalog.legacy.healthPath = 'status')],
  ['stickyBy a cookie', (c) => (c.features.catalog.routes[0].stickyBy = { cookie: 'id' })],
  ['a response timeout over an hour', (c) => (c.features.catalog.routes[0].responseTimeoutMs = 4_000_000)],
  ['compare with an unknown field', (c) => (c.features.catalog.compare.fuzzy = true)],
  ['a health check every 1 ms', (c) => (c.healthCheck.intervalMs = 1)],
  ['a health check with a typo', (c) => (c.healthCheck.intervall = 1000)],
  ['shadow with a typo', (c) => (c.shadow.sample = 5)],
  ['a static mode half', (c) => (c.state = { static: { catalog: { mode: 'half' } } })],
  ['a service URL that is not a URL', (c) => (c.services.proxy = 'proxy')],
  ['a service name with capitals', (c) => (c.services.Proxy = 'http://x:1')],
  ['a region slug with capitals', (c) => (c.features.streams.new.byRegion = { NYC1: ['http://10.0.1.9:7000'] })],
];

/** What only the validators can check (cross-field rules); the schema accepts these, by design. */
const VALIDATOR_ONLY_PLANS: Mutation[] = [
  ['full before the last step', (p) => (p.features.catalog.steps[0].mode = 'full')],
  ['the last step not full', (p) => (p.features.catalog.steps[2].mode = 'canary', (p.features.catalog.steps[2].percent = 50))],
  ['two steps of one name', (p) => (p.features.catalog.steps[1].name = 'shadow')],
  ['requires a feature not in the plan', (p) => (p.features.catalog.steps[2].requires = { billing: 'full' })],
  ['a selector that does not parse', (p) => (p.features.catalog.steps[2].gates[0].total = 'r_total{status=5}')],
];
const VALIDATOR_ONLY_CONFIGS: Mutation[] = [
  ['stickyBy a param the path lacks', (c) => (c.features.catalog.routes[0].stickyBy = { param: 'nope' })],
  ['a route twice', (c) => c.features.catalog.routes.push({ method: 'GET', path: '/catalog/:sku' })],
  ['byRegion without a region source', (c) => delete c.features.streams.routes[0].region],
];

describe('the JSON Schemas and the validators agree', () => {
  it('on the shipped files and a full good document', () => {
    for (const doc of [goodPlan(), json(DEFAULT_PLAN_URL), json('examples/nginx-and-node/plan.json')]) {
      expect(planSchema(doc), JSON.stringify(planSchema.errors)).toBe(true);
      expect(accepts(validatePlan, doc)).toBe(true);
    }
    for (const doc of [goodConfig(), json('examples/nginx-and-node/proxy.json')]) {
      expect(configSchema(doc), JSON.stringify(configSchema.errors)).toBe(true);
      expect(accepts(validateProxyConfig, doc)).toBe(true);
    }
  });

  it.each(BAD_PLANS)('plan: both refuse %s', (_name, mutate) => {
    const doc = clone(goodPlan());
    mutate(doc);
    expect(planSchema(doc), 'the schema accepted it').toBe(false);
    expect(accepts(validatePlan, doc), 'the validator accepted it').toBe(false);
  });

  it.each(BAD_CONFIGS)('config: both refuse %s', (_name, mutate) => {
    const doc = clone(goodConfig());
    mutate(doc);
    expect(configSchema(doc), 'the schema accepted it').toBe(false);
    expect(accepts(validateProxyConfig, doc), 'the validator accepted it').toBe(false);
  });

  it('the cross-field rules stay the validators\' (documented in each schema\'s description)', () => {
    for (const [name, mutate] of VALIDATOR_ONLY_PLANS) {
      const doc = clone(goodPlan());
      mutate(doc);
      expect(accepts(validatePlan, doc), name).toBe(false);
      expect(planSchema(doc), name).toBe(true);
    }
    for (const [name, mutate] of VALIDATOR_ONLY_CONFIGS) {
      const doc = clone(goodConfig());
      mutate(doc);
      expect(accepts(validateProxyConfig, doc), name).toBe(false);
      expect(configSchema(doc), name).toBe(true);
    }
  });
});
