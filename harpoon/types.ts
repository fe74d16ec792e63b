import type { EVENT_STATUSES, EVENT_TYPES } from '../domain/events.ts';

export type EventType = (typeof EVENT_TYPES)[number];
export type EventStatus = (typeof EVENT_STATUSES)[number];

/**
 * An event as Harpoon serves it (GET /v1/events/:id, every stream message).
 * Times are ISO 8601 UTC with milliseconds.
 */
export interface HarpoonEvent {
  id: number;
  type: EventType;
  status: EventStatus;
  region: string;
  region_id: number;
  server_id: number | null;
  droplet_id: number | null;
  customer_id: number | null;
  /** The `args` column parsed as JSON (null when absent or not JSON). */
  args: unknown;
  message: string | null;
  /** The idempotency key the event was created with, if any. */
  key: string | null;
  created_at: string;
  available_at: string | null;
  started_at: string | null;
  finished_at: string | null;
}

/** What happened to the event in one log entry. */
export type ChangeKind = 'created' | 'status' | 'placed';

/** One row of `event_log`: the unit of the stream. `cursor` is its id. */
export interface Change {
  cursor: number;
  kind: ChangeKind;
  event: HarpoonEvent;
  committed_at: string;
}

/** A create request item (POST /v1/events). */
export interface CreateEventInput {
  type: EventType;
  region: string;
  droplet_id?: number | null;
  customer_id?: number | null;
  /** Given: the event is addressed to this hypervisor and deliverable at once. Absent: the scheduler places it. */
  server_id?: number | null;
  args?: Record<string, unknown> | null;
  message?: string | null;
  /** Idempotency key: a second create with the same key returns the first event. */
  key?: string | null;
}

/** A status change (POST /v1/events/:id/status): a new status, a placement, or both. */
export interface StatusChangeInput {
  id: number;
  status?: EventStatus;
  server_id?: number;
  message?: string | null;
}

export interface CreateResult {
  event: HarpoonEvent;
  /** True when the key matched an event created earlier: nothing new was written. */
  duplicate: boolean;
}

export interface StatusResult {
  event: HarpoonEvent;
  /** False when the event already had this status (and placement): a harmless repeat, nothing written. */
  changed: boolean;
}
