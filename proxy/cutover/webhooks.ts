import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { Counter, type Registry } from 'prom-client';
import { invalidOption } from '../../lib/errors.ts';
import { silentLogger, type Logger } from '../../lib/logger.ts';
import { cutoverError } from './errors.ts';
import type { GateReading } from './gates.ts';
import type { CutoverPlan, NotifyEvent, WebhookSpec } from './plan.ts';

/**
 * The plan's webhooks. A `confirm` hook is asked before any step is
 * entered and blocks it unless it answers 2xx in time; a `notify` hook is
 * told after every change it subscribes to, in the background, retried
 * with backoff. Every body is signed (see signatureHeader) with a secret
 * the admin was given by name: never the plan, never a constant.
 */

export const SIGNATURE_HEADER = 'x-strangler-signature';

/** What a webhook receives (format `json`); `slack` sends `{ text }` built from it. */
export interface WebhookPayload {
  /** `confirm-step` for confirm hooks. */
  event: NotifyEvent | 'confirm-step';
  feature: string;
  from_step: number;
  to_step: number;
  /** The step entered (advance, confirm) or the one the feature is on. */
  step_name: string;
  actor: string;
  reason: string | null;
  /** Gate readings the decision was made on, when there were any. */
  readings?: GateReading[];
  at: string;
}

export interface WebhooksOptions {
  hooks: readonly WebhookSpec[];
  /** Secret name (a hook's `secret`) → value. A hook naming a secret that is not here is refused at start. */
  secrets?: Record<string, string>;
  registry?: Registry;
  logger?: Logger;
  fetch?: (url: string, init: { method: string; headers: Record<string, string>; body: string; signal: AbortSignal }) => Promise<{ ok: boolean; status: number; text(): Promise<string> }>;
  /** First retry delay; doubles per attempt. Default 500 ms. */
  backoffMs?: number;
  clock?: () => Date;
}

export interface Webhooks {
  /** Asks every confirm hook for the feature; throws CUTOVER_ERR_CONFIRM_BLOCKED naming the first that did not answer 2xx. */
  confirm(payload: Omit<WebhookPayload, 'event' | 'at'>): Promise<void>;
  /** Tells every notify hook subscribed to the event, in the background. */
  notify(payload: Omit<WebhookPayload, 'at'>): void;
  /** Waits for deliveries in flight (close() calls it). */
  flush(): Promise<void>;
  readonly count: number;
}

/**
 * `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the time is signed with the body,
 * so a receiver can refuse replays older than it tolerates.
 *
 * @example
 *   headers['x-strangler-signature'] = signatureHeader(secret, body, new Date());
 */
export function signatureHeader(secret: string, body: string, at: Date): string {
  const t = Math.floor(at.getTime() / 1000);
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

/**
 * What a receiver runs: true when `header` signs `body` with `secret` and is at most
 * `toleranceSeconds` old.
 *
 * @example
 *   if (!verifySignature(process.env.HOOK_SECRET!, req.headers['x-strangler-signature'], rawBody)) return res.writeHead(401).end();
 */
export function verifySignature(secret: string, header: string | undefined, body: string, options: { toleranceSeconds?: number; now?: Date } = {}): boolean {
  const m = /^t=(\d{1,12}),v1=([0-9a-f]{64})$/.exec(header ?? '');
  if (!m) return false;
  const t = Number(m[1]);
  const now = Math.floor((options.now ?? new Date()).getTime() / 1000);
  if (Math.abs(now - t) > (options.toleranceSeconds ?? 300)) return false;
  const want = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  return timingSafeEqual(want, Buffer.from(m[2]!, 'hex'));
}

/** The environment variable a webhook secret is read from: STRANGLER_WEBHOOK_SECRET_<NAME> (upper case, - as _). */
export function webhookSecretVariable(name: string): string {
  return `STRANGLER_WEBHOOK_SECRET_${name.toUpperCase().replace(/-/g, '_')}`;
}

/**
 * The secrets a plan's webhooks name, read from `env` (main.ts passes process.env); names
 * without a variable are left out, so createWebhooks refuses them with the variable to set.
 */
export function webhookSecretsFromEnv(plan: Pick<CutoverPlan, 'webhooks'>, env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const hook of plan.webhooks ?? []) {
    if (!hook.secret) continue;
    const value = env[webhookSecretVariable(hook.secret)];
    if (value) out[hook.secret] = value;
  }
  return out;
}

/** A Slack-compatible body: one line a person reads in a channel. */
export function slackText(p: Omit<WebhookPayload, 'at'>): string {
  const failing = (p.readings ?? []).filter((r) => r.verdict !== 'pass');
  const why = p.reason ? ` — ${p.reason}` : '';
  const gates = failing.length ? ` (${failing.map((r) => `${r.gate} ${r.verdict}: ${r.message}`).join('; ')})` : '';
  const move = p.from_step === p.to_step ? `at step ${p.to_step} ${p.step_name}` : `step ${p.from_step} → ${p.to_step} ${p.step_name}`;
  return `strangler cutover: ${p.feature} ${p.event} ${move} by ${p.actor}${why}${gates}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref?.());

export function createWebhooks(options: WebhooksOptions): Webhooks {
  const logger = (options.logger ?? silentLogger()).child({ component: 'cutover-webhooks' });
  const secrets = options.secrets ?? {};
  const backoffMs = options.backoffMs ?? 500;
  const clock = options.clock ?? (() => new Date());
  const doFetch = options.fetch ?? ((url, init) => fetch(url, init));
  for (const hook of options.hooks) {
    if (hook.secret && !secrets[hook.secret]) {
      throw invalidOption(`webhooks.${hook.name}.secret`, hook.secret, `a secret given to the admin: set ${webhookSecretVariable(hook.secret)}`);
    }
  }
  const deliveries = options.registry
    ? new Counter({
        name: 'cutover_webhook_deliveries_total',
        help: 'Webhook deliveries by webhook, type and outcome: delivered (2xx), failed (gave up after its retries), blocked (a confirm hook said no).',
        labelNames: ['webhook', 'type', 'outcome'],
        registers: [options.registry],
      })
    : undefined;
  const attempts = options.registry
    ? new Counter({
        name: 'cutover_webhook_attempts_total',
        help: 'HTTP attempts at webhooks, by webhook and answer (the status code, timeout or error).',
        labelNames: ['webhook', 'answer'],
        registers: [options.registry],
      })
    : undefined;
  const inFlight = new Set<Promise<unknown>>();

  const applies = (hook: WebhookSpec, feature: string) => !hook.features || (hook.features as readonly string[]).includes(feature);

  /** One delivery with its retries: resolves with the last answer; ok only for a 2xx. */
  async function deliver(hook: WebhookSpec, payload: WebhookPayload): Promise<{ ok: boolean; answer: string }> {
    const body = hook.format === 'slack' ? JSON.stringify({ text: slackText(payload) }) : JSON.stringify(payload);
    const tries = 1 + (hook.retries ?? (hook.type === 'confirm' ? 1 : 3));
    const id = randomUUID();
    let answer = 'not sent';
    for (let i = 0; i < tries; i++) {
      if (i > 0) await sleep(backoffMs * 2 ** (i - 1));
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'user-agent': 'strangler-cutover',
        'x-strangler-event': payload.event,
        'x-strangler-delivery': id,
      };
      if (hook.secret) headers[SIGNATURE_HEADER] = signatureHeader(secrets[hook.secret]!, body, clock());
      let status = 0;
      try {
        const res = await doFetch(hook.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(hook.timeout_ms ?? 5000) });
        status = res.status;
        const text = await res.text().catch(() => '');
        answer = `HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ''}`;
        attempts?.inc({ webhook: hook.name, answer: String(status) });
        if (res.ok) return { ok: true, answer };
      } catch (err) {
        const timeout = (err as Error).name === 'TimeoutError';
        answer = timeout ? `no answer within ${hook.timeout_ms ?? 5000} ms` : ((err as Error & { cause?: Error }).cause?.message ?? (err as Error).message);
        attempts?.inc({ webhook: hook.name, answer: timeout ? 'timeout' : 'error' });
      }
      // A 4xx other than 408/429 is the receiver's considered answer: asking again changes nothing.
      if (status >= 400 && status < 500 && status !== 408 && status !== 429) break;
    }
    return { ok: false, answer };
  }

  return {
    count: options.hooks.length,
    async confirm(p) {
      const payload: WebhookPayload = { ...p, event: 'confirm-step', at: clock().toISOString() };
      for (const hook of options.hooks) {
        if (hook.type !== 'confirm' || !applies(hook, p.feature)) continue;
        const { ok, answer } = await deliver(hook, payload);
        deliveries?.inc({ webhook: hook.name, type: 'confirm', outcome: ok ? 'delivered' : 'blocked' });
        if (!ok) {
          logger.warn({ webhook: hook.name, feature: p.feature, step: p.to_step, answer }, 'confirm webhook blocked the step');
          throw cutoverError('CUTOVER_ERR_CONFIRM_BLOCKED', `${p.feature} step ${p.to_step} (${p.step_name}) was not confirmed by webhook ${hook.name}: ${answer}`, {
            webhook: hook.name,
            answer,
          });
        }
      }
    },
    notify(p) {
      const payload: WebhookPayload = { ...p, at: clock().toISOString() };
      for (const hook of options.hooks) {
        if (hook.type !== 'notify' || !applies(hook, p.feature)) continue;
        if (hook.events && !hook.events.includes(p.event as NotifyEvent)) continue;
        const run = deliver(hook, payload).then(({ ok, answer }) => {
          deliveries?.inc({ webhook: hook.name, type: 'notify', outcome: ok ? 'delivered' : 'failed' });
          if (!ok) logger.warn({ webhook: hook.name, event: p.event, feature: p.feature, answer }, 'notify webhook gave up');
        });
        inFlight.add(run);
        void run.finally(() => inFlight.delete(run));
      }
    },
    async flush() {
      await Promise.allSettled([...inFlight]);
    },
  };
}
