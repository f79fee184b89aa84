/** 操作ログ: filters, free-text search, keyset pagination, detail with chain status, CSV export. */
import { isUsbDeviceData, readEventData } from '../../../protocol/event-data.js';
import { describeEvent, eventFields, eventTypeName } from '../../../protocol/event-text.js';
import { AGENT_EVENT_TYPES, CONSOLE_EVENT_TYPES } from '../../../protocol/events.js';
import { safeText } from '../../../protocol/text.js';
import { HttpError } from '../../module.js';
import { BOM, csvLine } from '../csv.js';
import { html, qs } from '../html.js';
import { fmtTime, tr, type Lang } from '../i18n.js';
import { eventByRid, eventPage, eventsForExport, SEVERITIES, terminalNames, type EventQuery } from '../queries.js';
import { page, type WebReq, type WebRouteSpec } from '../web.js';
import { chainBadge, hostnames, pager, sevBadge, terminalLabel } from './common.js';

/** This page's own words (Japanese first); kept here so the shared dictionary is not edited by every page. */
const WORDS = {
  sentence: ['内容', 'What happened'],
  fields: ['データ項目', 'Data fields'],
  field: ['項目', 'Field'],
  value: ['値', 'Value'],
  key: ['キー', 'Key'],
  rawJson: ['JSON(詳細表示)', 'JSON (advanced)'],
  registerDevice: ['この機器を登録', 'Register this device'],
} as const satisfies Record<string, readonly [string, string]>;
const w = (L: Lang, k: keyof typeof WORDS): string => WORDS[k][L === 'ja' ? 0 : 1];

/** The USB events whose data names one device (what "この機器を登録" can take from). */
const USB_DEVICE_TYPES = new Set(['usb.blocked', 'usb.allowed', 'usb.readonly', 'usb.exception_used', 'usb.would_block']);

/** Whether an event's device can be registered: its declared data carries the raw serial (the matching key). */
export function registrableDevice(type: string, data: unknown): boolean {
  if (!USB_DEVICE_TYPES.has(type)) return false;
  const d = readEventData('usb.blocked', data); // all five share one declaration
  return d !== null && isUsbDeviceData(d) && d.serialHex !== null && d.serialHex !== '';
}

const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;
// The export is built in memory: bounded so one click cannot exhaust the console (narrow the filter for more).
export const CSV_MAX_ROWS = 100_000;

/** A calendar day in Japan time → its first instant in UTC. */
export function dayStartIso(day: string): string {
  return new Date(Date.parse(day + 'T00:00:00+09:00')).toISOString();
}

export function dayEndIso(day: string): string {
  return new Date(Date.parse(day + 'T00:00:00+09:00') + 86_400_000).toISOString();
}

export function allTypes(): string[] {
  const t = new Set<string>([...Object.keys(AGENT_EVENT_TYPES), ...Object.keys(CONSOLE_EVENT_TYPES)]);
  const prefixes = new Set([...t].map((x) => x.split('.')[0] + '.*'));
  prefixes.add('admin.*');
  return [...[...prefixes].sort(), ...[...t].sort()];
}

/** Reads the filter from the query string; anything malformed is an error, never a silent "all". */
export function parseEventQuery(q: URLSearchParams): { query: EventQuery; form: Record<string, string> } {
  const get = (k: string, max = 200) => {
    const v = (q.get(k) ?? '').trim();
    if (v.length > max) throw new HttpError(400, 'invalid_request', `${k}: too long`);
    return v;
  };
  const form = { terminal: get('terminal', 64), user: get('user', 256), type: get('type', 80), severity: get('severity', 20), since: get('since', 10), until: get('until', 10), text: get('text', 200), before: get('before', 80) };
  if (form.type && !allTypes().includes(form.type) && !/^admin\.[a-z_]{1,64}$/.test(form.type)) throw new HttpError(400, 'invalid_request', `type: unknown`);
  if (form.severity && !(SEVERITIES as readonly string[]).includes(form.severity)) throw new HttpError(400, 'invalid_request', 'severity: unknown');
  for (const k of ['since', 'until'] as const) if (form[k] && (!DAY_RE.test(form[k]) || Number.isNaN(Date.parse(form[k])))) throw new HttpError(400, 'invalid_request', `${k}: YYYY-MM-DD`);
  let before: EventQuery['before'];
  if (form.before) {
    const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)~(\d{1,15})$/.exec(form.before);
    if (!m) throw new HttpError(400, 'invalid_request', 'before: bad cursor');
    before = { ts: m[1]!, rid: Number(m[2]) };
  }
  return {
    query: {
      terminal: form.terminal || undefined,
      user: form.user || undefined,
      type: form.type || undefined,
      severity: form.severity || undefined,
      since: form.since ? dayStartIso(form.since) : undefined,
      until: form.until ? dayEndIso(form.until) : undefined,
      text: form.text || undefined,
      before,
    },
    form,
  };
}

function filterForm(r: WebReq, f: Record<string, string>, names: Map<string, string>) {
  const L: Lang = r.lang;
  const terminals = [...names.entries()].sort((a, b) => a[1].localeCompare(b[1]));
  return html`<form method="get" action="/events" class="filters" id="event-filters">
<label>${tr(L, 'terminal')}<select name="terminal"><option value="">${tr(L, 'all')}</option><option value="console" ${f.terminal === 'console' ? 'selected' : ''}>console</option>${terminals.map(
    ([id, h]) => html`<option value="${id}" ${f.terminal === id ? 'selected' : ''}>${safeText(h, 40)} (${id.slice(0, 8)})</option>`,
  )}</select></label>
<label>${tr(L, 'user')}<input name="user" value="${f.user}" maxlength="256"></label>
<label>${tr(L, 'type')}<select name="type"><option value="">${tr(L, 'all')}</option>${allTypes().map((t) => html`<option value="${t}" ${f.type === t ? 'selected' : ''}>${eventTypeName(t, L)}</option>`)}</select></label>
<label>${tr(L, 'severity')}<select name="severity"><option value="">${tr(L, 'all')}</option>${SEVERITIES.map((s) => html`<option ${f.severity === s ? 'selected' : ''}>${s}</option>`)}</select></label>
<label>${tr(L, 'since')}<input type="date" name="since" value="${f.since}"></label>
<label>${tr(L, 'until')}<input type="date" name="until" value="${f.until}"></label>
<label>${tr(L, 'text')}<input type="search" name="text" value="${f.text}" maxlength="200"></label>
<button type="submit">${tr(L, 'filter')}</button> <a href="/events">${tr(L, 'clear')}</a></form>`;
}

export const eventRoutes: WebRouteSpec[] = [
  {
    method: 'GET',
    path: '/events',
    access: 'session',
    handle(r) {
      const L = r.lang;
      const { query, form } = parseEventQuery(r.api.query);
      const p = eventPage(r.ctx.db, query);
      const labels = terminalNames(r.ctx.db); // an id prefix where two terminals report the same name
      const keep = { terminal: form.terminal, user: form.user, type: form.type, severity: form.severity, since: form.since, until: form.until, text: form.text };
      const body = html`${filterForm(r, form, labels)}
<p class="actions"><a class="button" id="csv-link" href="/events.csv${qs(keep)}" download>${tr(L, 'exportCsv')}</a></p>
${p.scanLimited ? html`<p class="note">${tr(L, 'scanLimited')}</p>` : ''}
${
  p.events.length === 0
    ? html`<p>${tr(L, 'noEvents')}</p>`
    : html`<table class="events"><thead><tr><th>${tr(L, 'time')}</th><th>${tr(L, 'terminal')}</th><th>${tr(L, 'type')}</th><th>${tr(L, 'severity')}</th><th>${tr(L, 'user')}</th><th>${tr(L, 'details')}</th><th>${tr(L, 'chain')}</th></tr></thead><tbody>
${p.events.map(
  (e) => html`<tr data-rid="${e.rid}"><td class="nowrap"><a href="/events/${e.rid}">${fmtTime(e.ts, L)}</a></td><td>${terminalLabel(labels, e.terminalId)}</td><td title="${e.type}">${eventTypeName(e.type, L)}</td><td>${sevBadge(e.severity)}</td><td>${safeText(e.user ?? '', 64)}</td><td class="data">${describeEvent(e, L, { terminal: terminalLabel(labels, e.terminalId) })}</td><td>${chainBadge(L, e.chain)}</td></tr>`,
)}</tbody></table>`
}
${pager(L, '/events', keep, !!query.before, p.next ? `${p.next.ts}~${p.next.rid}` : null)}`;
      return page(r, 'events', '/events', body);
    },
  },
  {
    method: 'GET',
    path: /^\/events\/(\d{1,15})$/,
    access: 'session',
    handle(r) {
      const L = r.lang;
      const e = eventByRid(r.ctx.db, Number(r.api.params[0]));
      if (!e) throw new HttpError(404, 'not_found', tr(L, 'notFound'));
      const names = terminalNames(r.ctx.db);
      const gaps = r.ctx.db.prepare('SELECT from_seq, to_seq, detected_at FROM chain_gaps WHERE agent_id = ? ORDER BY from_seq DESC LIMIT 20').all(e.agentId) as {
        from_seq: number;
        to_seq: number;
        detected_at: string;
      }[];
      const fields = eventFields(e.data, L);
      const body = html`<p class="sentence" id="event-sentence">${describeEvent(e, L, { terminal: terminalLabel(names, e.terminalId) })}</p>
${registrableDevice(e.type, e.data) ? html`<p class="actions"><a class="button" id="register-device" href="/policy/usb/register${qs({ event: e.rid })}">${w(L, 'registerDevice')}</a></p>` : ''}
<dl class="detail">
<dt>${tr(L, 'time')}</dt><dd>${fmtTime(e.ts, L)} <code>${e.ts}</code></dd>
${e.agentTs !== null ? html`<dt>${tr(L, 'agentClaimedTime')}</dt><dd id="agent-ts"><code>${e.agentTs}</code> <span class="badge sev-warning">${tr(L, 'agentClaimedTimeNote')}</span></dd>` : ''}
<dt>${tr(L, 'type')}</dt><dd>${eventTypeName(e.type, L)} <code>${e.type}</code></dd>
<dt>${tr(L, 'severity')}</dt><dd>${sevBadge(e.severity)}</dd>
<dt>${tr(L, 'terminal')}</dt><dd>${e.terminalId === 'console' ? 'console' : html`<a href="/terminals/${encodeURIComponent(e.terminalId)}">${terminalLabel(names, e.terminalId)}</a>`} <code>${e.terminalId}</code></dd>
<dt>${tr(L, 'user')}</dt><dd>${safeText(e.user ?? '-', 256)}</dd>
<dt>ID</dt><dd><code>${e.id}</code></dd>
<dt>${tr(L, 'sequence')}</dt><dd>${e.agentId} #${e.seq}</dd>
<dt>${tr(L, 'chain')}</dt><dd id="chain-status">${chainBadge(L, e.chain)}</dd>
<dt>${tr(L, 'prevHash')}</dt><dd><code>${e.prevHash}</code></dd>
<dt>${tr(L, 'hash')}</dt><dd><code>${e.hash}</code></dd>
<dt>${tr(L, 'receivedAt')}</dt><dd>${fmtTime(e.receivedAt, L)}</dd>
</dl>
<h2>${w(L, 'fields')}</h2>${
  fields.length
    ? html`<table class="fields" id="event-fields"><thead><tr><th>${w(L, 'field')}</th><th>${w(L, 'value')}</th><th>${w(L, 'key')}</th></tr></thead><tbody>${fields.map(
        (f) => html`<tr data-key="${f.key}"><th scope="row">${f.label}</th><td>${f.value}</td><td><code>${f.key}</code></td></tr>`,
      )}</tbody></table>`
    : html`<p>${tr(L, 'none')}</p>`
}
<details><summary>${w(L, 'rawJson')}</summary><pre class="json" id="event-data">${JSON.stringify(e.data, null, 2)}</pre></details>
${gaps.length ? html`<h2>${tr(L, 'chainGap')}</h2><ul>${gaps.map((g) => html`<li>#${g.from_seq}–#${g.to_seq} (${fmtTime(g.detected_at, L)})</li>`)}</ul>` : ''}
<p><a href="/events">${tr(L, 'backToList')}</a></p>`;
      return page(r, 'eventDetail', '/events', body);
    },
  },
  {
    method: 'GET',
    path: '/events.csv',
    access: 'session',
    handle(r) {
      const L = r.lang;
      const { query } = parseEventQuery(r.api.query);
      const names = hostnames(r.ctx.db);
      // agent_ts: the time the agent signed, when the console stored its receipt time instead (hash checks use it).
      const chunks: string[] = [BOM, csvLine(['ts', 'terminal_id', 'hostname', 'type', 'severity', 'user', 'description', 'data', 'chain', 'agent_id', 'seq', 'id', 'hash', 'agent_ts'])];
      let n = 0;
      for (const e of eventsForExport(r.ctx.db, query, CSV_MAX_ROWS)) {
        chunks.push(csvLine([e.ts, e.terminalId, names.get(e.terminalId) ?? '', e.type, e.severity, e.user ?? '', describeEvent(e, L, { terminal: names.get(e.terminalId) ?? e.terminalId }), e.data, e.chain, e.agentId, e.seq, e.id, e.hash, e.agentTs ?? '']));
        n++;
      }
      r.ctx.recordEvent({ type: 'admin.events_exported', user: r.session!.username, data: { rows: n, filter: Object.fromEntries(r.api.query) } });
      const stamp = new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '');
      return {
        status: 200,
        headers: { 'content-type': 'text/csv; charset=utf-8', 'content-disposition': `attachment; filename="sekimori-events-${stamp}.csv"` },
        body: chunks.join(''),
      };
    },
  },
];
