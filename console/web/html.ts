/**
 * Server-side HTML with escaping by default: every interpolated value is escaped unless it is
 * already `Html` (produced by this module). Strings from agents are attacker-chosen (USB product
 * names, file names, user names), so there is no way to interpolate raw text by accident.
 */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' };

/** Escapes text for element content and quoted attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"'`]/g, (c) => ESCAPES[c]!);
}

export type HtmlValue = Html | string | number | boolean | null | undefined | readonly HtmlValue[];

function render(v: HtmlValue): string {
  if (v === null || v === undefined || v === false) return '';
  if (v instanceof Html) return v.value;
  if (Array.isArray(v)) return v.map(render).join('');
  // toWellFormed: lone surrogates from hostile input become U+FFFD instead of breaking the page encoding.
  return escapeHtml(String(v).toWellFormed());
}

/** Tagged template: `html\`<td>${untrusted}</td>\`` escapes the value. */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new Html(out);
}

/** For markup built by trusted code only (e.g. the QR code SVG this process generated). */
export function trusted(markup: string): Html {
  return new Html(markup);
}

export function join(items: readonly Html[], sep = ''): Html {
  return new Html(items.map((i) => i.value).join(sep));
}

/** A query string for links; values are URL-encoded (the result still goes through html``). */
export function qs(params: Record<string, string | number | undefined | null>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? '?' + s : '';
}
