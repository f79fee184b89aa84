/**
 * ソフトウェア資産: installed software per terminal (asset management), which terminals have a
 * package (optionally a version), a terminal's differences from the approved baseline, and CSV
 * for Excel. Names and versions come from terminals (attacker-controlled): html`` escapes them,
 * csvLine neutralises formulas. Data and queries belong to console/software/store.ts.
 */
import { safeText } from '../../../protocol/text.js';
import { inventoryBaselineDiff, inventoryOf, inventorySummaries, inventorySummary, terminalsWith, type InventorySummary } from '../../software/store.js';
import { BOM, csvLine } from '../csv.js';
import { html, qs } from '../html.js';
import { fmtTime, tr, type Lang } from '../i18n.js';
import { terminalNames } from '../queries.js';
import { page, type WebReq, type WebRouteSpec } from '../web.js';
import { terminalLabel } from './common.js';

/** Rows a page shows at most; CSV carries up to CSV_MAX_ROWS. */
const PAGE_ROWS = 2000;
const CSV_MAX_ROWS = 500_000;

/** The query as the page and the CSV read it, bounded (a URL is attacker-typed too). */
function inventoryQuery(r: WebReq): { q: string; v: string; agent: string } {
  const get = (k: string, max: number) => (r.api.query.get(k) ?? '').trim().slice(0, max);
  return { q: get('q', 512), v: get('v', 256), agent: get('agent', 64) };
}

function countCell(L: Lang, s: InventorySummary) {
  return s.stored < s.total ? html`${s.stored} / ${s.total} <span class="badge sev-warning">${tr(L, 'partialInventory')}</span>` : html`${s.stored}`;
}

export const softwareInventoryRoutes: WebRouteSpec[] = [
  {
    method: 'GET',
    path: '/software/inventory',
    access: 'session',
    handle(r) {
      const L = r.lang;
      const f = inventoryQuery(r);
      const names = terminalNames(r.ctx.db);
      const summaries = inventorySummaries(r.ctx).sort((a, b) => terminalLabel(names, a.agentId).localeCompare(terminalLabel(names, b.agentId)));
      const one = f.agent ? inventorySummary(r.ctx, f.agent) : null;
      const hits = f.q && !f.agent ? terminalsWith(r.ctx, { name: f.q, contains: true, ...(f.v ? { version: f.v } : {}) }, PAGE_ROWS + 1) : [];
      const search = html`<h2>${tr(L, 'inventorySearch')}</h2>
<form method="get" action="/software/inventory" class="filters" id="inventory-search">
${f.agent ? html`<input type="hidden" name="agent" value="${f.agent}">` : ''}
<label>${tr(L, 'packageName')}<input type="search" name="q" value="${f.q}" maxlength="512"></label>
<label>${tr(L, 'exactVersion')}<input name="v" value="${f.v}" maxlength="256"></label>
<button type="submit">${tr(L, 'search')}</button> <a href="/software/inventory">${tr(L, 'clear')}</a></form>`;

      const results =
        f.q && !f.agent
          ? html`<p class="actions"><a class="button" id="inventory-csv" href="/software/inventory.csv${qs({ q: f.q, v: f.v })}" download>${tr(L, 'exportCsv')}</a></p>
${
  hits.length === 0
    ? html`<p id="inventory-hits-none">${tr(L, 'noHits')}</p>`
    : html`${hits.length > PAGE_ROWS ? html`<p class="note">${tr(L, 'hitsLimited')}</p>` : ''}<table id="inventory-hits"><thead><tr><th>${tr(L, 'terminal')}</th><th>${tr(L, 'packageCol')}</th><th>${tr(L, 'version')}</th><th>${tr(L, 'archCol')}</th><th>${tr(L, 'reportedAt')}</th></tr></thead><tbody>
${hits.slice(0, PAGE_ROWS).map(
  (h) => html`<tr><td><a href="/software/inventory${qs({ agent: h.agentId })}">${terminalLabel(names, h.agentId)}</a></td><td class="data">${h.name}</td><td class="data">${h.version}</td><td>${h.arch}</td><td class="nowrap">${fmtTime(h.reportedAt, L)}</td></tr>`,
)}</tbody></table>`
}`
          : '';

      let terminal = html``;
      if (f.agent) {
        if (!one) terminal = html`<p class="note">${tr(L, 'noInventory')}</p>`;
        else {
          const rows = inventoryOf(r.ctx, f.agent, f.q, PAGE_ROWS + 1);
          const diff = inventoryBaselineDiff(r.ctx, f.agent);
          const diffBody = !diff
            ? html`<p>${tr(L, 'noApprovedBaseline')}</p>`
            : diff.missing.length + diff.extra.length + diff.otherVersion.length === 0
              ? html`<p>${tr(L, 'noDifferences')} (${diff.baselineId})</p>`
              : html`<p>${diff.baselineId}: ${tr(L, 'missingPackages')} ${diff.missing.length} / ${tr(L, 'extraPackages')} ${diff.extra.length} / ${tr(L, 'otherVersions')} ${diff.otherVersion.length}</p>
<table id="baseline-diff"><thead><tr><th>${tr(L, 'kindCol')}</th><th>${tr(L, 'packageCol')}</th><th>${tr(L, 'installedVersion')}</th><th>${tr(L, 'baselineVersion')}</th></tr></thead><tbody>
${diff.missing.slice(0, PAGE_ROWS).map((m) => html`<tr class="diff-missing"><td>${tr(L, 'missingPackages')}</td><td class="data">${m.name}</td><td>-</td><td class="data">${m.version}</td></tr>`)}
${diff.otherVersion.slice(0, PAGE_ROWS).map((o) => html`<tr class="diff-version"><td>${tr(L, 'otherVersions')}</td><td class="data">${o.name}</td><td class="data">${o.installed.map((i) => i.version).join(', ')}</td><td class="data">${o.approved.join(', ')}</td></tr>`)}
${diff.extra.slice(0, PAGE_ROWS).map((e) => html`<tr class="diff-extra"><td>${tr(L, 'extraPackages')}</td><td class="data">${e.name}</td><td class="data">${e.version}</td><td>-</td></tr>`)}
</tbody></table>`;
          terminal = html`<h2>${tr(L, 'inventoryOf')}: ${terminalLabel(names, f.agent)}</h2>
<p>${tr(L, 'platformCol')}: ${one.platform} / ${tr(L, 'packageCount')}: ${countCell(L, one)} / ${tr(L, 'reportedAt')}: ${fmtTime(one.reportedAt, L)} / ${tr(L, 'changedAt')}: ${fmtTime(one.changedAt, L)}</p>
<p class="actions"><a class="button" id="inventory-csv" href="/software/inventory.csv${qs({ agent: f.agent, q: f.q })}" download>${tr(L, 'exportCsv')}</a>
${diff ? html` <a class="button" id="baseline-diff-csv" href="/software/inventory.csv${qs({ agent: f.agent, diff: 1 })}" download>${tr(L, 'baselineDiff')} CSV</a>` : ''}</p>
<h3>${tr(L, 'baselineDiff')}</h3>
${diffBody}
<h3>${tr(L, 'packages')}</h3>
${rows.length > PAGE_ROWS ? html`<p class="note">${tr(L, 'hitsLimited')}</p>` : ''}
<table id="inventory-packages"><thead><tr><th>${tr(L, 'packageCol')}</th><th>${tr(L, 'version')}</th><th>${tr(L, 'archCol')}</th></tr></thead><tbody>
${rows.slice(0, PAGE_ROWS).map((p) => html`<tr><td class="data">${p.name}</td><td class="data">${p.version}</td><td>${p.arch}</td></tr>`)}</tbody></table>`;
        }
      }

      const list =
        summaries.length === 0
          ? html`<p>${tr(L, 'noInventory')}</p>`
          : html`<table id="inventory-terminals"><thead><tr><th>${tr(L, 'terminal')}</th><th>${tr(L, 'platformCol')}</th><th>${tr(L, 'packageCount')}</th><th>${tr(L, 'reportedAt')}</th><th>${tr(L, 'changedAt')}</th></tr></thead><tbody>
${summaries.map(
  (s) => html`<tr data-agent="${s.agentId}"><td><a href="/software/inventory${qs({ agent: s.agentId })}">${terminalLabel(names, s.agentId)}</a></td><td>${s.platform}</td><td class="num">${countCell(L, s)}</td><td class="nowrap">${fmtTime(s.reportedAt, L)}</td><td class="nowrap">${fmtTime(s.changedAt, L)}</td></tr>`,
)}</tbody></table>`;

      const body = html`<p>${tr(L, 'inventoryIntro')}</p>
${search}
${results}
${terminal}
<h2>${tr(L, 'terminals')}</h2>
${list}`;
      return page(r, 'inventory', '/software/inventory', body);
    },
  },
  {
    method: 'GET',
    path: '/software/inventory.csv',
    access: 'session',
    handle(r) {
      const f = inventoryQuery(r);
      const names = terminalNames(r.ctx.db);
      const label = (id: string) => safeText(names.get(id) ?? '', 256);
      const chunks: string[] = [BOM];
      let n = 0;
      if (f.agent && r.api.query.get('diff')) {
        const diff = inventoryBaselineDiff(r.ctx, f.agent);
        chunks.push(csvLine(['terminal_id', 'hostname', 'kind', 'name', 'installed_version', 'arch', 'baseline_version', 'baseline_id']));
        if (diff) {
          const host = label(f.agent);
          for (const m of diff.missing) chunks.push(csvLine([f.agent, host, 'missing', m.name, '', m.arch ?? '', m.version, diff.baselineId]));
          for (const o of diff.otherVersion) for (const i of o.installed) chunks.push(csvLine([f.agent, host, 'other_version', o.name, i.version, i.arch, o.approved.join(' '), diff.baselineId]));
          for (const e of diff.extra) chunks.push(csvLine([f.agent, host, 'extra', e.name, e.version, e.arch, '', diff.baselineId]));
          n = chunks.length - 2;
        }
      } else {
        chunks.push(csvLine(['terminal_id', 'hostname', 'name', 'version', 'arch', 'reported_at']));
        if (f.agent) {
          const s = inventorySummary(r.ctx, f.agent);
          for (const p of s ? inventoryOf(r.ctx, f.agent, f.q, CSV_MAX_ROWS) : []) chunks.push(csvLine([f.agent, label(f.agent), p.name, p.version, p.arch, s!.reportedAt]));
        } else {
          // No name: the whole fleet (LIKE '%%'), bounded.
          for (const h of terminalsWith(r.ctx, { name: f.q, contains: true, ...(f.v ? { version: f.v } : {}) }, CSV_MAX_ROWS)) chunks.push(csvLine([h.agentId, label(h.agentId), h.name, h.version, h.arch, h.reportedAt]));
        }
        n = chunks.length - 2;
      }
      r.ctx.recordEvent({ type: 'admin.software_inventory_exported', user: r.session!.username, data: { rows: n, filter: Object.fromEntries([...r.api.query].slice(0, 10).map(([k, v]) => [safeText(k, 32), safeText(v, 256)])) } });
      const stamp = new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '');
      return {
        status: 200,
        headers: { 'content-type': 'text/csv; charset=utf-8', 'content-disposition': `attachment; filename="sekimori-software-inventory-${stamp}.csv"` },
        body: chunks.join(''),
      };
    },
  },
];
