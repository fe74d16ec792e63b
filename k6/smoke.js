// Smoke test: one virtual user walks the droplet API once a second for 30 s
// and checks every answer. Run before and after each cutover step:
//   k6 run -e BASE_URL=http://127.0.0.1:9405 -e TOKEN=<api token> k6/smoke.js
import http from 'k6/http';
import { check, sleep } from 'k6';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:9405').replace(/\/$/, '');
const params = { headers: { authorization: 'Bearer ' + __ENV.TOKEN, accept: 'application/json' } };

export const options = {
  scenarios: { smoke: { executor: 'constant-vus', vus: 1, duration: __ENV.DURATION || '30s' } },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    http_req_duration: ['p(99)<1000'],
    checks: ['rate>0.99'],
  },
};

export function setup() {
  if (!__ENV.TOKEN) throw new Error('set TOKEN to a customer API token (strangler up prints one)');
  const health = http.request('GET', BASE_URL + '/healthz', null, { tags: { name: 'GET /healthz' } });
  check(health, { 'proxy healthy': (r) => r.status === 200 });
}

export default function () {
  const list = http.request('GET', BASE_URL + '/v2/droplets?per_page=20', null, Object.assign({ tags: { name: 'GET /v2/droplets' } }, params));
  check(list, { 'list 200': (r) => r.status === 200 });
  let droplets = [];
  try {
    droplets = list.json().droplets || [];
  } catch (e) {
    droplets = [];
  }
  if (droplets.length > 0) {
    const one = http.request('GET', BASE_URL + '/v2/droplets/' + droplets[0].id, null, Object.assign({ tags: { name: 'GET /v2/droplets/:id' } }, params));
    check(one, { 'get 200': (r) => r.status === 200 });
  }
  sleep(1);
}
