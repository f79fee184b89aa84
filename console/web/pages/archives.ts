/**
 * アーカイブ (issue 17): the retention periods in force, the archives written (from the
 * retention_archives table: file, period, counts, manifest hash) and a search that reads an
 * archive FILE — verified against this console's own key first; a file that does not verify is
 * not shown as evidence. Everything from an archive came from terminals: the template escapes it,
 * the CSV neutralises formula cells (console/web/csv.ts).
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { HttpError } from '../../module.js';
import { MAX_TAR_BYTES } from '../../report/tar.js';
import { ARCHIVE_DIR, periodsInForce } from '../../retention/run.js';
import { getArchive, listArchives, type ArchiveRecord } from '../../retention/store.js';
import { checkFilter, SEARCH_CSV_HEADER, searchCsvCells, searchRows, verifyArchive, type ArchiveCheck, type SearchFilter } from '../../retention/verify.js';
import { BOM, csvLine } from '../csv.js';
import { html, qs, type Html } from '../html.js';
import { fmtTime, tr } from '../i18n.js';
import { page, type WebReq, type WebRouteSpec } from '../web.js';
import { hostnames, terminalLabel } from './common.js';

/** Rows one page shows; the CSV has the whole search. */
export const ARCHIVE_PAGE_ROWS = 500;

function form(r: WebReq): { id: number | null; filter: SearchFilter; keep: Record<string, string> } {
  const g = (k: string) => (r.api.query.get(k) ?? '').slice(0, 257);
  const idText = g('archive');
  const id = /^\d{1,12}$/.test(idText) ? Number(idText) : null;
  const filter: SearchFilter = { type: g('type') || undefined, agent: g('agent') || undefined, from: g('from') || undefined, to: g('to') || undefined, text: g('text') || undefined };
  const bad = checkFilter(filter);
  if (bad) throw new HttpError(400, 'invalid_request', bad);
  return { id, filter, keep: { archive: idText, type: g('type'), agent: g('agent'), from: g('from'), to: g('to'), text: g('text') } };
}

function readArchive(r: WebReq, a: ArchiveRecord): ArchiveCheck {
  // The file name comes from our own table, never from the request.
  if (!/^archive-[0-9a-z-]{1,80}\.tar$/.test(a.file)) return { ok: false, reason: 'bad file name' };
  const path = join(r.ctx.dataDir, ARCHIVE_DIR, a.file);
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return { ok: false, reason: tr(r.lang, 'archiveMissing') };
  }
  if (size > MAX_TAR_BYTES) return { ok: false, reason: 'file too large' };
  const publicKeyPem = readFileSync(join(r.ctx.dataDir, 'policy-signing-key.pub.pem'), 'utf8');
  // Verifying is synchronous work on the console's one thread (≈ 3 CPU s per 100,000 events): the
  // last verified archive is kept for ten minutes, so refining a search does not verify again; a
  // file whose size or mtime changed is read and verified afresh.
  const mtimeMs = statSync(path).mtimeMs;
  const now = Date.now();
  if (cached && cached.path === path && cached.size === size && cached.mtimeMs === mtimeMs && cached.key === publicKeyPem && now - cached.at < CACHE_MS) return cached.check;
  const check = verifyArchive(readFileSync(path), { publicKeyPem });
  cached = check.ok ? { path, size, mtimeMs, key: publicKeyPem, at: now, check } : null;
  return check;
}

const CACHE_MS = 10 * 60_000;
let cached: { path: string; size: number; mtimeMs: number; key: string; at: number; check: ArchiveCheck } | null = null;

function archiveRow(r: WebReq, a: ArchiveRecord): Html {
  const L = r.lang;
  return html`<tr data-archive-id="${a.id}" data-status="${a.status}"><td>${a.id}</td><td><code>${a.file || '-'}</code></td><td>${a.status}${a.error ? html`<br><small class="error">${a.error}</small>` : ''}</td>
<td class="nowrap">${fmtTime(a.fromTs, L)} 〜 ${fmtTime(a.toTs, L)}</td><td class="num">${a.events}</td><td class="num">${a.deleted}</td><td class="num">${a.agents}</td><td class="num">${a.bytes.toLocaleString('en-US')}</td>
<td>${a.manifestSha256 ? html`<code title="${a.manifestSha256}">${a.manifestSha256.slice(0, 16)}…</code>` : '-'}</td><td class="nowrap">${fmtTime(a.createdAt, L)}<br><small>${a.createdBy}</small></td></tr>`;
}

export const archiveRoutes: WebRouteSpec[] = [
  {
    method: 'GET',
    path: '/archives',
    access: 'session',
    handle(r) {
      const L = r.lang;
      const f = form(r);
      const archives = listArchives(r.ctx.db);
      let periodsHtml: Html;
      try {
        const periods = periodsInForce(r.ctx, new Date());
        periodsHtml = periods.length
          ? html`<table id="retention-periods"><thead><tr><th>${tr(L, 'archiveFamily')}</th><th>${tr(L, 'archiveDays')}</th><th>${tr(L, 'archiveSource')}</th><th>${tr(L, 'archiveCutoff')}</th></tr></thead><tbody>${periods.map(
              (p) => html`<tr data-family="${p.family}"><td>${p.family}</td><td class="num">${p.days}</td><td>${p.source}</td><td>${fmtTime(p.cutoff, L)}</td></tr>`,
            )}</tbody></table>`
          : html`<p id="retention-none">${tr(L, 'archiveKeepAll')}</p>`;
      } catch (e) {
        periodsHtml = html`<p class="error" id="retention-error">${(e as Error).message}</p>`;
      }
      const complete = archives.filter((a) => a.status === 'complete');
      let results: Html = html``;
      if (f.id !== null) {
        const a = getArchive(r.ctx.db, f.id);
        if (!a) throw new HttpError(404, 'not_found', tr(L, 'notFound'));
        const check = readArchive(r, a);
        if (!check.ok) results = html`<p class="error" id="archive-verify-failed">${tr(L, 'archiveVerifyFailed')}: ${check.reason}</p>`;
        else {
          const names = hostnames(r.ctx.db);
          const found = searchRows(check.rows, f.filter, ARCHIVE_PAGE_ROWS);
          results = html`<p class="ok" id="archive-verified">${tr(L, 'archiveVerified')} (${check.manifest.key.fingerprint.slice(0, 16)}…)</p>
<p class="actions"><span id="archive-total">${found.total}</span> ${tr(L, 'archiveMatches')} <a class="button" id="archive-csv" href="/archives/search.csv${qs(f.keep)}" download>${tr(L, 'archiveCsv')}</a></p>
${
  found.rows.length
    ? html`<table id="archive-results"><thead><tr><th>${tr(L, 'time')}</th><th>${tr(L, 'terminal')}</th><th>seq</th><th>${tr(L, 'archiveType')}</th><th>${tr(L, 'user')}</th><th>${tr(L, 'archiveData')}</th><th>hash</th></tr></thead><tbody>${found.rows.map(
        (x) =>
          html`<tr data-seq="${x.seq}"><td class="nowrap">${fmtTime(x.ts, L)}</td><td>${terminalLabel(names, x.terminal_id)}</td><td class="num">${x.seq}</td><td>${x.type}</td><td class="user">${x.user ?? '-'}</td><td class="data"><code>${x.data.slice(0, 600)}</code></td><td><code title="${x.hash}">${x.hash.slice(0, 12)}…</code></td></tr>`,
      )}</tbody></table>`
    : html`<p id="archive-empty">${tr(L, 'archiveNoMatch')}</p>`
}`;
        }
      }
      const body = html`<p class="note">${tr(L, 'archiveHelp')}</p>
<h2>${tr(L, 'archivePeriods')}</h2>${periodsHtml}
<h2>${tr(L, 'archiveList')}</h2>
${
  archives.length
    ? html`<table id="archives"><thead><tr><th>#</th><th>${tr(L, 'archiveFile')}</th><th>${tr(L, 'archiveStatus')}</th><th>${tr(L, 'archivePeriod')}</th><th>${tr(L, 'archiveEvents')}</th><th>${tr(L, 'archiveDeleted')}</th><th>${tr(L, 'terminals')}</th><th>${tr(L, 'archiveBytes')}</th><th>${tr(L, 'archiveManifest')}</th><th>${tr(L, 'archiveCreated')}</th></tr></thead><tbody>${archives.map((a) => archiveRow(r, a))}</tbody></table>`
    : html`<p id="archives-empty">${tr(L, 'archiveNone')}</p>`
}
<h2>${tr(L, 'archiveSearch')}</h2>
<form method="get" action="/archives" class="filters" id="archive-search">
<label>${tr(L, 'archiveFile')}<select name="archive">${complete.map((a) => html`<option value="${a.id}" ${f.id === a.id ? 'selected' : ''}>#${a.id} ${a.file}</option>`)}</select></label>
<label>${tr(L, 'archiveType')}<input name="type" value="${f.keep.type}" maxlength="256" placeholder="usb.*"></label>
<label>${tr(L, 'terminal')}<input name="agent" value="${f.keep.agent}" maxlength="256"></label>
<label>${tr(L, 'since')}<input name="from" value="${f.keep.from}" maxlength="40" placeholder="2026-01-01"></label>
<label>${tr(L, 'until')}<input name="to" value="${f.keep.to}" maxlength="40"></label>
<label>${tr(L, 'archiveText')}<input name="text" value="${f.keep.text}" maxlength="256"></label>
<button type="submit">${tr(L, 'filter')}</button></form>
${results}`;
      return page(r, 'archives', '/archives', body);
    },
  },
  {
    method: 'GET',
    path: '/archives/search.csv',
    access: 'session',
    handle(r) {
      const f = form(r);
      const a = f.id === null ? null : getArchive(r.ctx.db, f.id);
      if (!a) throw new HttpError(404, 'not_found', tr(r.lang, 'notFound'));
      const check = readArchive(r, a);
      if (!check.ok) throw new HttpError(409, 'archive_invalid', `${tr(r.lang, 'archiveVerifyFailed')}: ${check.reason}`);
      const found = searchRows(check.rows, f.filter, Number.MAX_SAFE_INTEGER);
      r.ctx.recordEvent({ type: 'admin.events_exported', user: r.session!.username, data: { rows: found.rows.length, filter: Object.fromEntries(r.api.query) } });
      return {
        status: 200,
        headers: { 'content-type': 'text/csv; charset=utf-8', 'content-disposition': `attachment; filename="sekimori-archive-${a.id}.csv"` },
        body: BOM + csvLine([...SEARCH_CSV_HEADER]) + found.rows.map((x) => csvLine(searchCsvCells(x))).join(''),
      };
    },
  },
];
