// Create burst: droplet creates arriving at a rising rate, the load that
// built the 2016 queue. Watch the scheduler backlog and the MySQL panels
// while it runs:
//   k6 run -e BASE_URL=http://127.0.0.1:9405 -e TOKEN=<api token> -e PEAK=50 k6/create-burst.js
import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:9405').replace(/\/$/, '');
const PEAK = Number(__ENV.PEAK || 20);
const REGIONS = (__ENV.REGIONS || 'nyc1,sfo1,ams2').split(',');
const SIZES = (__ENV.SIZES || '512mb,1gb,2gb').split(',');
const IMAGE = __ENV.IMAGE || 'debian-8-x64';

export const options = {
  scenarios: {
    burst: {
      executor: 'ramping-arrival-rate',
      startRate: 1,
      timeUnit: '1s',
      preAllocatedVUs: Math.max(5, PEAK),
      maxVUs: PEAK * 10,
      stages: [
        { target: PEAK, duration: '20s' },
        { target: PEAK, duration: '40s' },
        { target: 0, duration: '10s' },
      ],
    },
  },
  thresholds: {
    // 202 is the only success: a create is accepted, then scheduled asynchronously.
    http_req_failed: ['rate<0.01'],
    http_req_duration: ['p(99)<2000'],
  },
};

export default function () {
  const i = exec.scenario.iterationInTest;
  const body = JSON.stringify({
    name: 'k6-burst-' + i + '.example.com',
    region: REGIONS[i % REGIONS.length],
    size: SIZES[i % SIZES.length],
    image: IMAGE,
  });
  const res = http.request('POST', BASE_URL + '/v2/droplets', body, {
    headers: { authorization: 'Bearer ' + __ENV.TOKEN, 'content-type': 'application/json' },
    tags: { name: 'POST /v2/droplets' },
  });
  check(res, { 'create accepted (202)': (r) => r.status === 202 });
}
