/**
 * HTML escaping for the demo report.
 *
 * Hypervisor names, MySQL users, settings and stage details all come from
 * the run, and some of them are chosen by whoever runs the demo. Rather than
 * remembering to escape each one, the report is written with the `html`
 * tagged template, which escapes every interpolated value unless it is
 * already `SafeHtml` (markup built by `html` itself). Forgetting to escape
 * then takes effort instead of being the default.
 */

const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/**
 * Escapes text for use both between tags and inside a quoted attribute.
 *
 * @example
 * escapeHtml('<script>alert("x")</script>'); // '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'
 */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c);
}

/** Markup that is already safe to embed as is. */
export class SafeHtml {
  constructor(readonly markup: string) {}

  toString(): string {
    return this.markup;
  }
}

export type HtmlValue = SafeHtml | string | number | boolean | null | undefined | readonly HtmlValue[];

function render(value: HtmlValue): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof SafeHtml) return value.markup;
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

/**
 * Builds markup, escaping every interpolated value that is not `SafeHtml`.
 * Arrays are concatenated, and `null`/`undefined`/`false` render as nothing
 * so that `${cond && html`…`}` reads naturally.
 *
 * @example
 * html`<td>${userName}</td>`.markup; // userName is escaped
 */
export function html(strings: TemplateStringsArray, ...values: readonly HtmlValue[]): SafeHtml {
  let out = strings[0] ?? '';
  values.forEach((value, i) => {
    out += render(value) + (strings[i + 1] ?? '');
  });
  return new SafeHtml(out);
}

/**
 * Marks a constant as markup. Only for text written in this code base (the
 * stylesheet), never for anything read from a report.
 */
export function trustedHtml(markup: string): SafeHtml {
  return new SafeHtml(markup);
}
