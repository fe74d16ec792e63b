/** One dispatched server-sent event (https://html.spec.whatwg.org/multipage/server-sent-events.html). */
export interface SseMessage {
  /** `message` unless the stream named another type with `event:`. */
  event: string;
  data: string;
  /** The `id:` of this message, when it had one. */
  id?: string;
}

/**
 * An incremental text/event-stream parser: feed it chunks as they arrive,
 * it calls `onMessage` per dispatched event. Comment lines (heartbeats) and
 * `retry:` are reported through `onComment` / `onRetry` when given.
 *
 * @example
 *   const p = createSseParser((m) => console.log(m.id, m.data));
 *   res.on('data', (chunk) => p.push(chunk));
 */
const LINE_END = /[\r\n]/;

export function createSseParser(
  onMessage: (message: SseMessage) => void,
  hooks: { onComment?: (text: string) => void; onRetry?: (ms: number) => void } = {},
): { push(chunk: string): void } {
  let buffer = '';
  let event = '';
  let data: string[] = [];
  let id: string | undefined;
  let sawField = false;

  function line(text: string): void {
    if (text === '') {
      if (sawField && data.length > 0) onMessage({ event: event || 'message', data: data.join('\n'), ...(id !== undefined ? { id } : {}) });
      event = '';
      data = [];
      id = undefined;
      sawField = false;
      return;
    }
    if (text.startsWith(':')) {
      hooks.onComment?.(text.slice(1).trimStart());
      return;
    }
    const colon = text.indexOf(':');
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    sawField = true;
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
    else if (field === 'id' && !value.includes('\u0000')) id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) hooks.onRetry?.(Number(value));
  }

  /** Chunks with no line end in them, held until one comes: a large message is joined once, not rescanned per chunk. */
  let held: string[] = [];

  return {
    push(chunk: string) {
      // A chunk with no line end cannot complete a line, unless the text before it ended with a lone \r.
      if (!LINE_END.test(chunk) && !(held.length === 0 && buffer.endsWith('\r'))) {
        held.push(chunk);
        return;
      }
      buffer += held.length > 0 ? held.join('') + chunk : chunk;
      held = [];
      for (;;) {
        const m = /\r\n|\r|\n/.exec(buffer);
        if (!m) break;
        // A lone \r at the end of a chunk may be the first half of \r\n: wait for more.
        if (m[0] === '\r' && m.index === buffer.length - 1) break;
        line(buffer.slice(0, m.index));
        buffer = buffer.slice(m.index + m[0].length);
      }
    },
  };
}
