import { defineErrors, type ErrorCode, type StranglerError } from '../lib/errors.ts';

/** Every code the Event Router answers or fails with (`{ code, message }` bodies); runbooks/errors.md follows this table. */
export const ROUTER_ERRORS = defineErrors({
  ROUTER_ERR_UNAUTHORIZED: { status: 401, message: 'no bearer token, a malformed one, an unknown hypervisor, or a MAC that does not verify.' },
  ROUTER_ERR_FORBIDDEN: { status: 403, message: "a valid token used for another hypervisor's stream, acks or events." },
  ROUTER_ERR_WRONG_REGION: { status: 404, message: "the hypervisor (or the path's region) is not this router's region." },
  ROUTER_ERR_EVENT_NOT_FOUND: { status: 404, message: 'an ack for an event that does not exist.' },
  ROUTER_ERR_NOT_CLAIMED: { status: 409, message: 'an ack for an event that was never claimed (still pending) or failed.' },
  ROUTER_ERR_VALIDATION: { status: 422, message: 'an ack body with missing, unknown or mistyped fields.' },
  ROUTER_ERR_TAKEOVER_LIMITED: { status: 429, message: "a stream for a hypervisor whose stream was replaced 3 times in the window already (a stolen token fighting the agent); retry later." },
  ROUTER_ERR_SHUTTING_DOWN: { status: 503, message: 'the router is shutting down; reconnect (to another router, or this one when it is back).' },
  ROUTER_ERR_CLAIM_FAILED: { status: 503, message: 'an ack for an event delivered before its claim, whose claim at ack did not get through; retry.' },
  ROUTER_ERR_UNKNOWN_REGION: { status: 500, message: 'start-up: ROUTER_REGION names no row of `regions`.' },
  ROUTER_ERR_INTERNAL: { status: 500, message: 'start-up: router/main.ts failed with an uncoded error (MySQL unreachable, access denied, the port in use).' },
  ROUTER_ERR_START: { status: 500, message: 'supervisor (router/supervisor.ts): a router process exited, or did not answer /readyz, while starting.' },
});

export type RouterErrorCode = ErrorCode<typeof ROUTER_ERRORS>;

/** A StranglerError whose status comes from the table. */
export const routerError: (code: RouterErrorCode, message: string, cause?: unknown) => StranglerError = ROUTER_ERRORS.error;
