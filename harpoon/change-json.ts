/**
 * The JSON text of a committed change and of its event, made once and
 * shared: one event goes out in the create's answer, in the push to every
 * peer replica and in each subscriber's frame, and stringifying it for
 * each of them was a large part of a batch's CPU. Changes and events are
 * never modified once built (write-batch.ts, change-log.ts), so a text
 * cached by object stays right.
 *
 * @example
 *   const frame = `id: ${change.cursor}\ndata: ${changeJson(change)}\n\n`;   // === JSON.stringify(change)
 */
import type { Change, HarpoonEvent } from './types.ts';

const eventTexts = new WeakMap<HarpoonEvent, string>();
const changeTexts = new WeakMap<Change, string>();

/** `JSON.stringify(event)`, once per event object. */
export function eventJson(event: HarpoonEvent): string {
  let text = eventTexts.get(event);
  if (text === undefined) eventTexts.set(event, (text = JSON.stringify(event)));
  return text;
}

/** `JSON.stringify(change)`, byte for byte, once per change object; its event's text is shared with eventJson. */
export function changeJson(change: Change): string {
  let text = changeTexts.get(change);
  if (text === undefined) {
    const keys = Object.keys(change);
    // The shape every change has (write-batch.ts builds them in this order; a peer's push keeps it): assembled
    // from the event's text. Anything else is stringified whole, so the text is always JSON.stringify's.
    text =
      keys.length === 4 && keys[0] === 'cursor' && keys[1] === 'kind' && keys[2] === 'event' && keys[3] === 'committed_at'
        ? `{"cursor":${JSON.stringify(change.cursor)},"kind":${JSON.stringify(change.kind)},"event":${eventJson(change.event)},"committed_at":${JSON.stringify(change.committed_at)}}`
        : JSON.stringify(change);
    changeTexts.set(change, text);
  }
  return text;
}
