/**
 * One stored event → one RFC 5424 syslog message, framed for RFC 5425 (octet counting). Pure: no
 * I/O, no clock. Also a small parser of what it writes (tests and the rsyslog tier read it back).
 *
 *   <PRI>1 TIMESTAMP HOSTNAME sekimori PROCID MSGID [sekimori@32473 eventId="…" … data.x="…"] BOM+日本語の説明
 *
 * SD-ID: `sekimori@32473`. 32473 is the Private Enterprise Number RFC 5612 reserves for
 * documentation (RFC 5424's own examples use it); it is a placeholder until the project has its
 * own IANA PEN (RFC 5424 §7.2.2: an SD-ID with "@" carries the owner's PEN).
 */
import { describeEvent } from '../../protocol/event-text.js';
import type { Severity } from '../../protocol/events.js';

export const SD_ID = 'sekimori@32473';
export const APP_NAME = 'sekimori';

/** RFC 5424 §6.2.1 facilities by name. */
export const FACILITIES: Readonly<Record<string, number>> = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, syslog: 5, lpr: 6, news: 7, uucp: 8, cron: 9, authpriv: 10, ftp: 11,
  ntp: 12, audit: 13, alert: 14, clock: 15, local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23,
};
/**
 * authpriv: these are security audit records naming staff (personal data of the My Number segment).
 * A stock syslog (Debian's rsyslog.conf) writes authpriv.* only to the restricted auth.log and keeps
 * it out of the general /var/log/syslog, so a receiver or relay that is not configured for us yet
 * does not spread them; a site that routes by local0–7 sets --facility.
 */
export const DEFAULT_FACILITY = 'authpriv';

export function facilityCode(name: string): number | null {
  return Object.hasOwn(FACILITIES, name) ? FACILITIES[name]! : null;
}
export function facilityName(code: number): string {
  return Object.entries(FACILITIES).find(([, c]) => c === code)?.[0] ?? String(code);
}

/** Our severities → RFC 5424 §6.2.1 severity codes. */
export const SEVERITY_CODE: Readonly<Record<Severity, number>> = { critical: 2, warning: 4, notice: 5, info: 6 };

/** What the forwarder reads per event (a stored row + the terminal's host name as the console knows it). */
export interface ForwardEvent {
  rid: number;
  id: string;
  agentId: string;
  seq: number;
  ts: string;
  type: string;
  severity: string;
  user: string | null;
  data: unknown;
  prevHash: string;
  hash: string;
  terminalId: string;
  chain: string;
  receivedAt: string;
  agentTs: string | null;
  /** The terminal's host name (agents table); null for the console's own events or an unknown terminal. */
  hostname: string | null;
}

export interface FormatOptions {
  facility: number;
  /** HOSTNAME of the console's own events (agentId 'console'); null → NILVALUE. */
  consoleHostname: string | null;
}

/** PRINTUSASCII (33–126) only, at most `max` characters; others become "_"; empty → NILVALUE. */
export function printUsAscii(s: string, max: number): string {
  if (s.length <= max && /^[!-~]+$/.test(s)) return s; // the common case, without a per-character loop
  let out = '';
  for (const ch of s) {
    if (out.length >= max) break;
    const c = ch.codePointAt(0)!;
    out += c >= 33 && c <= 126 ? ch : '_';
  }
  return out === '' ? '-' : out;
}

/** SD-NAME (§6.3.2/6.3.3): 1–32 PRINTUSASCII except '=', SP, ']', '"'. */
export function sdName(s: string): string {
  if (s.length <= 32 && /^[!#-<>-\\^-~]+$/.test(s)) return s;
  let out = '';
  for (const ch of s) {
    if (out.length >= 32) break;
    const c = ch.codePointAt(0)!;
    out += c >= 33 && c <= 126 && ch !== '=' && ch !== ']' && ch !== '"' ? ch : '_';
  }
  return out === '' ? '_' : out;
}

/** PARAM-VALUE escaping, exactly §6.3.3: '"', '\' and ']' get a backslash; nothing else changes. */
export function escapeParamValue(s: string): string {
  return s.replace(/["\\\]]/g, (c) => '\\' + c);
}

/** RFC 5424 TIMESTAMP (RFC 3339, at most 6 fraction digits, year 0000–9999) or NILVALUE. */
export function rfc5424Timestamp(ts: string): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/.exec(ts);
  if (!m) return '-';
  const [mo, d, h, mi, s] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number];
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return '-';
  return ts;
}

/** Most data leaves one message carries (event data is ≤ 32 KiB, so a real event never reaches it). */
export const MAX_LEAVES = 4096;

/**
 * Event data as SD-PARAMs: nested keys joined with "." under "data." (arrays by index), strings as
 * they are, numbers/booleans/null as JSON text. Names are cut to 32 characters (§6.3.3); RFC 5424
 * allows a PARAM-NAME more than once, so a cut that collides still loses no value.
 */
export function flattenData(data: unknown, prefix = 'data'): [string, string][] {
  const out: [string, string][] = [];
  const walk = (v: unknown, path: string, depth: number): void => {
    if (out.length >= MAX_LEAVES) return;
    if (v !== null && typeof v === 'object' && depth < 40) {
      const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v as Record<string, unknown>);
      if (entries.length === 0) out.push([sdName(path), Array.isArray(v) ? '[]' : '{}']);
      for (const [k, x] of entries) walk(x, `${path}.${k}`, depth + 1);
      return;
    }
    out.push([sdName(path), typeof v === 'string' ? v : v === undefined ? '' : (JSON.stringify(v) ?? '')]);
  };
  walk(data, prefix, 0);
  return out;
}

/** The SD-PARAMs of an event, in a fixed order: who/what first, then the data fields. */
export function eventParams(e: ForwardEvent): [string, string][] {
  const p: [string, string][] = [
    ['eventId', e.id],
    ['type', e.type],
    ['severity', e.severity],
    ['agentId', e.agentId],
    ['seq', String(e.seq)],
    ['ts', e.ts],
  ];
  if (e.agentTs !== null) p.push(['agentTs', e.agentTs]);
  p.push(['receivedAt', e.receivedAt], ['hash', e.hash], ['prevHash', e.prevHash], ['chain', e.chain], ['terminalId', e.terminalId]);
  if (e.hostname !== null) p.push(['hostname', e.hostname]);
  if (e.user !== null) p.push(['user', e.user]);
  return [...p, ...flattenData(e.data)];
}

/** One RFC 5424 message (without the octet-count frame). Strings are made well-formed (lone surrogates → U+FFFD). */
export function formatEvent(e: ForwardEvent, o: FormatOptions): string {
  const sev = SEVERITY_CODE[e.severity as Severity] ?? 5;
  const pri = `<${o.facility * 8 + sev}>1`;
  const isConsole = e.agentId === 'console';
  const host = isConsole ? o.consoleHostname : e.hostname;
  const hostname = host === null || host === '' ? '-' : printUsAscii(host, 255);
  const procid = isConsole ? '-' : printUsAscii(e.agentId, 128);
  const msgid = printUsAscii(e.type, 32);
  const sd = `[${SD_ID}${eventParams(e).map(([k, v]) => ` ${k}="${escapeParamValue(v.toWellFormed())}"`).join('')}]`;
  const text = describeEvent({ type: e.type, user: e.user, data: e.data }, 'ja', { terminal: isConsole ? null : (e.hostname ?? e.terminalId) });
  return `${pri} ${rfc5424Timestamp(e.ts)} ${hostname} ${APP_NAME} ${procid} ${msgid} ${sd} \uFEFF${text.toWellFormed()}`;
}

/** RFC 5425 §4.3 octet-counting frame: MSG-LEN SP SYSLOG-MSG (MSG-LEN in octets of the UTF-8 message). */
export function frame(msg: string): Buffer {
  const body = Buffer.from(msg, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length} `, 'ascii'), body]);
}

// ---- reading it back (tests, the rsyslog tier) -------------------------------------------------

export interface SdElement {
  id: string;
  params: [string, string][];
}

/** STRUCTURED-DATA → elements, undoing §6.3.3 escaping; null when it is not well-formed. */
export function parseStructuredData(sd: string): SdElement[] | null {
  if (sd === '-') return [];
  const out: SdElement[] = [];
  let i = 0;
  const name = (): string | null => {
    const start = i;
    while (i < sd.length && !' =]"'.includes(sd[i]!) && sd.charCodeAt(i) > 32 && sd.charCodeAt(i) < 127) i++;
    return i > start ? sd.slice(start, i) : null;
  };
  while (i < sd.length) {
    if (sd[i] !== '[') return null;
    i++;
    const id = name();
    if (id === null) return null;
    const el: SdElement = { id, params: [] };
    while (sd[i] === ' ') {
      i++;
      const k = name();
      if (k === null || sd[i] !== '=' || sd[i + 1] !== '"') return null;
      i += 2;
      let v = '';
      for (;;) {
        if (i >= sd.length) return null;
        const c = sd[i]!;
        if (c === '"') break;
        if (c === '\\' && (sd[i + 1] === '"' || sd[i + 1] === '\\' || sd[i + 1] === ']')) {
          v += sd[i + 1];
          i += 2;
          continue;
        }
        v += c;
        i++;
      }
      i++;
      el.params.push([k, v]);
    }
    if (sd[i] !== ']') return null;
    i++;
    out.push(el);
  }
  return out;
}

export interface ParsedMessage {
  pri: number;
  timestamp: string;
  hostname: string;
  appName: string;
  procid: string;
  msgid: string;
  sd: SdElement[];
  msg: string;
}

/** Splits one RFC 5424 message as formatEvent writes it; null when malformed. */
export function parseMessage(m: string): ParsedMessage | null {
  const h = /^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) /.exec(m);
  if (!h) return null;
  let rest = m.slice(h[0].length);
  let sdText: string;
  if (rest.startsWith('- ') || rest === '-') {
    sdText = '-';
    rest = rest.slice(2);
  } else {
    // The SD ends at the first ']' that is not escaped and is followed by SP, '[' or the end.
    let i = 0;
    let inValue = false;
    for (; i < rest.length; i++) {
      const c = rest[i]!;
      if (inValue) {
        if (c === '\\') i++;
        else if (c === '"') inValue = false;
      } else if (c === '"') inValue = true;
      else if (c === ']' && rest[i + 1] !== '[') break;
    }
    sdText = rest.slice(0, i + 1);
    rest = rest.slice(i + 2);
  }
  const sd = parseStructuredData(sdText);
  if (sd === null) return null;
  return { pri: Number(h[1]), timestamp: h[2]!, hostname: h[3]!, appName: h[4]!, procid: h[5]!, msgid: h[6]!, sd, msg: rest };
}
