import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCutoverAdmin, type CutoverAdmin } from '../../../proxy/cutover/admin.ts';
import { validatePlan } from '../../../proxy/cutover/plan.ts';
import { createWebhooks, SIGNATURE_HEADER, verifySignature, webhookSecretsFromEnv, type WebhookPayload } from '../../../proxy/cutover/webhooks.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';
import { metricValue, startUpstream, waitFor, type TestUpstream } from '../../helpers/upstream.ts';

const TOKEN = 'webhooks-token-0123456789abcdef';

describe('cutover webhooks against a real local receiver', () => {
  let t: TestDatabase;
  let receiver: TestUpstream;
  let admin: CutoverAdmin;
  let url: string;
  const secret = randomBytes(24).toString('base64url');
  /** What the confirm hook answers next: a status, or 'hang' (no answer within its timeout). */
  let confirmAnswer: number | 'hang' = 200;
  /** Notify attempts to fail with 500 before one succeeds. */
  let notifyFailures = 0;

  beforeAll(async () => {
    t = await createTestDatabase('webhooks');
    receiver = await startUpstream('receiver', async (req, res) => {
      if (req.url === '/confirm') {
        if (confirmAnswer === 'hang') {
          await new Promise((r) => setTimeout(r, 1500));
          if (!res.destroyed) res.writeHead(200).end();
          return true;
        }
        res.writeHead(confirmAnswer, { 'content-type': 'text/plain' }).end(confirmAnswer === 200 ? 'ok' : 'change freeze until Monday');
        return true;
      }
      if (req.url === '/notify' && notifyFailures > 0) {
        notifyFailures--;
        res.writeHead(500).end('busy');
        return true;
      }
      res.writeHead(200).end('ok');
      return true;
    });
    const plan = validatePlan({
      version: 1,
      webhooks: [
        { name: 'gate', type: 'confirm', url: `${receiver.url}/confirm`, secret: 'hooks', timeout_ms: 500, retries: 1 },
        { name: 'ops', type: 'notify', url: `${receiver.url}/notify`, secret: 'hooks', retries: 3 },
        { name: 'chat', type: 'notify', url: `${receiver.url}/slack`, format: 'slack', events: ['rollback', 'auto-rollback'] },
      ],
      features: {
        'event-delivery': {
          steps: [
            { name: 'canary', mode: 'canary', percent: 10, soak_seconds: 0, gates: [] },
            { name: 'all', mode: 'full', soak_seconds: 0, gates: [] },
          ],
        },
      },
    });
    admin = createCutoverAdmin({
      db: t.service('proxy'),
      tokens: { operator: TOKEN },
      services: {},
      plan,
      watch: false,
      webhookSecrets: webhookSecretsFromEnv(plan, { STRANGLER_WEBHOOK_SECRET_HOOKS: secret }),
      webhookBackoffMs: 50,
    });
    url = (await admin.start()).url;
  });

  afterAll(async () => {
    await admin?.close();
    await receiver?.close();
    await t?.drop();
  });

  const post = async (path: string, body: unknown = {}) => {
    const res = await fetch(`${url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const at = (path: string) => receiver.requests.filter((r) => r.url === path);

  it('refuses to start without the secret a webhook names, and names the variable to set', () => {
    expect(() => createWebhooks({ hooks: [{ name: 'ops', type: 'notify', url: 'http://127.0.0.1:1/', secret: 'hooks' }], secrets: {} })).toThrow(/STRANGLER_WEBHOOK_SECRET_HOOKS/);
  });

  it('blocks a step when the confirm hook answers non-2xx, after its retry, and records why', async () => {
    confirmAnswer = 503;
    const res = await post('/cutover/event-delivery/advance', { reason: 'try' });
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ code: 'CUTOVER_ERR_CONFIRM_BLOCKED', webhook: 'gate' });
    expect(res.body.message).toMatch(/not confirmed by webhook gate: HTTP 503: change freeze until Monday/);
    expect(at('/confirm')).toHaveLength(2); // retries: 1
    const body = at('/confirm')[0]!.body;
    expect(JSON.parse(body)).toMatchObject({ event: 'confirm-step', feature: 'event-delivery', from_step: 0, to_step: 1, step_name: 'canary', actor: 'operator' });
    expect(verifySignature(secret, at('/confirm')[0]!.headers[SIGNATURE_HEADER] as string, body)).toBe(true);
    expect(await admin.controller.statusOf('event-delivery')).toMatchObject({ step: 0 });
    const last = (await admin.controller.history({ feature: 'event-delivery', limit: 1 }))[0]!;
    expect(last).toMatchObject({ action: 'advance-blocked', from_step: 0, to_step: 0 });
  });

  it('blocks a step when the confirm hook does not answer within its timeout', async () => {
    confirmAnswer = 'hang';
    const res = await post('/cutover/event-delivery/advance');
    expect(res.status).toBe(409);
    expect(res.body.message).toMatch(/no answer within 500 ms/);
    expect(await admin.controller.statusOf('event-delivery')).toMatchObject({ step: 0 });
  });

  it('lets a confirmed step through and tells every subscriber, signed, retrying a failing receiver with backoff', async () => {
    confirmAnswer = 200;
    notifyFailures = 2;
    const before = at('/notify').length;
    const res = await post('/cutover/event-delivery/advance', { reason: 'window open' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    await waitFor(() => at('/notify').length >= before + 3, 5000, 'three attempts at the notify hook');
    const delivered = at('/notify').at(-1)!;
    const payload = JSON.parse(delivered.body) as WebhookPayload;
    expect(payload).toMatchObject({ event: 'advance', feature: 'event-delivery', from_step: 0, to_step: 1, step_name: 'canary', actor: 'operator', reason: 'window open' });
    expect(delivered.headers['x-strangler-event']).toBe('advance');
    expect(verifySignature(secret, delivered.headers[SIGNATURE_HEADER] as string, delivered.body)).toBe(true);
    expect(verifySignature('another-secret', delivered.headers[SIGNATURE_HEADER] as string, delivered.body)).toBe(false);
    expect(verifySignature(secret, delivered.headers[SIGNATURE_HEADER] as string, delivered.body.replace('canary', 'all'))).toBe(false);
    // One delivery: every attempt carries the same id.
    expect(new Set(at('/notify').slice(before).map((r) => r.headers['x-strangler-delivery'])).size).toBe(1);
    expect(at('/slack').length).toBe(0); // chat only hears of rollbacks

    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metricValue(metrics, 'cutover_webhook_deliveries_total', { webhook: 'ops', type: 'notify', outcome: 'delivered' })).toBe(1);
    expect(metricValue(metrics, 'cutover_webhook_attempts_total', { webhook: 'ops', answer: '500' })).toBe(2);
    expect(metricValue(metrics, 'cutover_webhook_deliveries_total', { webhook: 'gate', type: 'confirm', outcome: 'blocked' })).toBe(2);
    expect(metricValue(metrics, 'cutover_webhook_deliveries_total', { webhook: 'gate', type: 'confirm', outcome: 'delivered' })).toBe(1);
  });

  it('sends a Slack-compatible {text} to a slack hook, and notifies pauses and rollbacks', async () => {
    expect((await post('/cutover/event-delivery/pause', { reason: 'lunch' })).status).toBe(200);
    expect((await post('/cutover/event-delivery/rollback', { reason: 'p99 up' })).status).toBe(200);
    await waitFor(() => at('/slack').length >= 1 && at('/notify').some((r) => JSON.parse(r.body).event === 'rollback'), 5000, 'the rollback notifications');
    const slack = JSON.parse(at('/slack')[0]!.body) as Record<string, unknown>;
    expect(Object.keys(slack)).toEqual(['text']);
    expect(slack.text).toBe('strangler cutover: event-delivery rollback step 1 → 0 legacy by operator — p99 up');
    expect(at('/notify').map((r) => JSON.parse(r.body).event)).toEqual(expect.arrayContaining(['advance', 'pause', 'rollback']));
  });
});
