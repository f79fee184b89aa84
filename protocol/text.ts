/**
 * Strings that come from outside (USB descriptors, file names, user names) are attacker-chosen.
 * They are kept as data — never interpreted — but normalised so they are valid UTF-8, carry no
 * control characters that could rewrite a terminal or a log line, and have a bounded length.
 * HTML escaping is the renderer's job (the console escapes on output).
 */
export const DEFAULT_TEXT_LIMIT = 256;

export function safeText(raw: string | Uint8Array | null | undefined, limit = DEFAULT_TEXT_LIMIT): string {
  if (raw === null || raw === undefined) return '';
  // Invalid UTF-8 sequences become U+FFFD instead of throwing or passing through.
  const text = typeof raw === 'string' ? raw.toWellFormed() : new TextDecoder('utf-8', { fatal: false }).decode(raw);
  // C0 and C1 controls and DEL are shown as \xNN so that nothing is hidden and nothing acts.
  // eslint-disable-next-line no-control-regex
  const visible = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0'));
  const chars = Array.from(visible);
  return chars.length <= limit ? visible : chars.slice(0, limit).join('') + '…';
}
