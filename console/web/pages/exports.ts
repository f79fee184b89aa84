/**
 * 持ち出しログ (issue 16): every file written to a usable removable medium, as the terminals
 * reported it (usb.file_written), searchable by terminal, user, device serial and period, with an
 * Excel-compatible CSV (console/web/csv.ts: BOM, CRLF, formula cells neutralised). Every string
 * here came from a terminal (file names, device names, user names): the html template escapes it.
 */
import { HttpError } from '../../module.js';
import { EXPORT_CSV_HEADER, exportCsvCells, exportPage, exportsForExport, parseExportQuery, type ExportForm, type ExportRow } from '../../usb/exports.js';
import { BOM, csvLine } from '../csv.js';
import { html, qs, type Html } from '../html.js';
import { fmtTime, tr, type Lang, type MsgKey } from '../i18n.js';
import { terminalNames } from '../queries.js';
import { page, type WebReq, type WebRouteSpec } from '../web.js';
import { hostnames, pager, terminalLabel } from './common.js';

/** The export is built in memory: bounded like the other CSVs. */
export const EXPORTS_CSV_MAX_ROWS = 100_000;

const ACCESS_KEY: Record<string, MsgKey> = { allow: 'exportAccessAllow', exception: 'exportAccessException', monitor: 'exportAccessMonitor' };
const SKIP_KEYS = new Set(['too_large', 'removed', 'replaced', 'changed', 'unreadable', 'queue_full', 'medium_gone', 'agent_stopped']);

function skippedText(L: Lang, reason: string | null): string {
  if (reason && SKIP_KEYS.has(reason)) return tr(L, `exportSkip_${reason}` as MsgKey);
  return reason ? `${tr(L, 'exportNoHash')} (${reason})` : tr(L, 'exportNoHash');
}

function query(r: WebReq) {
  const p = parseExportQuery((k) => r.api.query.get(k));
  if ('error' in p) throw new HttpError(400, 'invalid_request', p.error);
  return p;
}

function searchForm(r: WebReq, f: ExportForm, names: Map<string, string>): Html {
  const L = r.lang;
  const terminals = [...names.entries()].sort((a, b) => a[1].localeCompare(b[1]));
  return html`<form method="get" action="/exports" class="filters" id="export-search">
<label>${tr(L, 'terminal')}<select name="terminal"><option value="">${tr(L, 'all')}</option>${terminals.map(
    ([id, h]) => html`<option value="${id}" ${f.terminal === id ? 'selected' : ''}>${h} (${id.slice(0, 8)})</option>`,
  )}</select></label>
<label>${tr(L, 'user')}<input name="user" value="${f.user}" maxlength="256"></label>
<label>${tr(L, 'serialNo')}<input name="serial" value="${f.serial}" maxlength="512" placeholder="${tr(L, 'exportSerialHint')}"></label>
<label>${tr(L, 'since')}<input type="date" name="from" value="${f.from}"></label>
<label>${tr(L, 'until')}<input type="date" name="to" value="${f.to}"></label>
<button type="submit">${tr(L, 'filter')}</button> <a href="/exports">${tr(L, 'clear')}</a></form>`;
}

function row(r: WebReq, e: ExportRow, names: Map<string, string>): Html {
  const L = r.lang;
  const d = e.data;
  if (!d)
    return html`<tr data-rid="${e.rid}" class="undeclared"><td class="nowrap"><a href="/events/${e.rid}">${fmtTime(e.ts, L)}</a></td><td>${terminalLabel(names, e.terminalId)}</td><td>${e.user ?? '-'}</td><td colspan="5">-</td></tr>`;
  return html`<tr data-rid="${e.rid}" data-serial-hex="${d.device.serialHex ?? ''}"><td class="nowrap"><a href="/events/${e.rid}">${fmtTime(e.ts, L)}</a></td>
<td>${terminalLabel(names, e.terminalId)}</td>
<td class="user">${e.user ?? '-'}${d.userSource === 'session' ? html`<br><small>(${tr(L, 'exportWriterSession')})</small>` : ''}</td>
<td class="path"><code>${d.path}</code></td>
<td class="size num">${d.size.toLocaleString('en-US')}</td>
<td class="hash">${d.sha256 ? html`<code title="${d.sha256}">${d.sha256.slice(0, 16)}…</code>` : html`<small class="no-hash" data-skipped="${d.hashSkipped ?? ''}">${skippedText(L, d.hashSkipped)}</small>`}</td>
<td class="medium">${d.device.label || '-'}<br><code>${d.device.vendorId}:${d.device.productId}</code> ${d.device.serial ? html`<small class="serial">${d.device.serial}</small>` : ''}</td>
<td>${ACCESS_KEY[d.device.access] ? tr(L, ACCESS_KEY[d.device.access]!) : d.device.access}${d.device.exceptionId ? html`<br><small>${d.device.exceptionId}</small>` : ''}</td></tr>`;
}

export const exportRoutes: WebRouteSpec[] = [
  {
    method: 'GET',
    path: '/exports',
    access: 'session',
    handle(r) {
      const L = r.lang;
      const { query: q, form } = query(r);
      const names = terminalNames(r.ctx.db);
      const p = exportPage(r.ctx.db, q);
      const keep = { terminal: form.terminal, user: form.user, serial: form.serial, from: form.from, to: form.to };
      const body = html`<p class="note">${tr(L, 'exportLogHelp')}</p>${searchForm(r, form, names)}
<p class="actions"><span id="export-total">${p.rows.length} ${tr(L, 'exportRowsShown')}</span> <a class="button" id="exports-csv" href="/exports.csv${qs(keep)}" download>${tr(L, 'exportCsv')}</a></p>
${
  p.rows.length === 0
    ? html`<p id="exports-empty">${tr(L, 'exportNone')}</p>`
    : html`<table id="exports"><thead><tr><th>${tr(L, 'time')}</th><th>${tr(L, 'terminal')}</th><th>${tr(L, 'user')}</th><th>${tr(L, 'exportFile')}</th><th>${tr(L, 'exportSize')}</th><th>${tr(L, 'exportHash')}</th><th>${tr(L, 'exportMedium')}</th><th>${tr(L, 'exportAccess')}</th></tr></thead><tbody>
${p.rows.map((e) => row(r, e, names))}</tbody></table>`
}
${pager(L, '/exports', keep, !!q.before, p.next ? `${p.next.ts}~${p.next.rid}` : null)}`;
      return page(r, 'exportLog', '/exports', body);
    },
  },
  {
    method: 'GET',
    path: '/exports.csv',
    access: 'session',
    handle(r) {
      const { query: q } = query(r);
      const names = hostnames(r.ctx.db);
      const chunks: string[] = [BOM, csvLine([...EXPORT_CSV_HEADER])];
      let n = 0;
      const { before: _page, ...all } = q; // the CSV is the whole search, not one page
      for (const e of exportsForExport(r.ctx.db, all, EXPORTS_CSV_MAX_ROWS)) {
        chunks.push(csvLine(exportCsvCells(e, names.get(e.terminalId) ?? '')));
        n++;
      }
      r.ctx.recordEvent({ type: 'admin.usb_exports_exported', user: r.session!.username, data: { rows: n, filter: Object.fromEntries(r.api.query) } });
      const stamp = new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '');
      return {
        status: 200,
        headers: { 'content-type': 'text/csv; charset=utf-8', 'content-disposition': `attachment; filename="sekimori-export-log-${stamp}.csv"` },
        body: chunks.join(''),
      };
    },
  },
];
