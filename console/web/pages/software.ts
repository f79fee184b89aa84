/**
 * 無許可ソフトウェア: baseline approval (a reference terminal's inventory becomes the allowlist of
 * the next signed policy) and quarantined files. Data and rules belong to console/software.
 */
import { safeText } from '../../../protocol/text.js';
import { approveBaseline, importBaseline, listBaselines, listQuarantined, rejectBaseline, requestRestore } from '../../software/store.js';
import { html } from '../html.js';
import { fmtTime, tr } from '../i18n.js';
import { csrfField, field, isAdmin, page, redirect, refusedAsBadRequest, type WebRouteSpec } from '../web.js';
import { terminalLabel } from './common.js';
import { softwareInventoryRoutes } from './software-inventory.js';
import { terminalNames } from '../queries.js';

export const softwareRoutes: WebRouteSpec[] = [
  ...softwareInventoryRoutes,
  {
    method: 'GET',
    path: '/software',
    access: 'session',
    handle(r) {
      const L = r.lang;
      const admin = isAdmin(r);
      const names = terminalNames(r.ctx.db); // an id prefix where two terminals report the same name
      const baselines = listBaselines(r.ctx).reverse();
      const quarantined = listQuarantined(r.ctx).reverse().slice(0, 500);
      const body = html`${r.api.query.get('done') ? html`<p class="ok" role="status">${tr(L, 'done')}</p>` : ''}
<p><a href="/software/inventory">${tr(L, 'inventory')}</a></p>
<h2>${tr(L, 'baselines')}</h2>
<table id="baselines"><thead><tr><th>ID</th><th>${tr(L, 'hostname')}</th><th>${tr(L, 'createdAt')}</th><th>${tr(L, 'packages')}</th><th>${tr(L, 'files')}</th><th>${tr(L, 'status')}</th><th>${tr(L, 'policyVersion')}</th>${admin ? html`<th></th>` : ''}</tr></thead><tbody>
${baselines.map(
  (b) => html`<tr><td><code>${b.id}</code></td><td>${safeText(b.host, 64)}</td><td>${fmtTime(b.importedAt, L)} (${b.importedBy})</td><td class="num">${b.packages}</td><td class="num">${b.files}</td>
<td>${tr(L, b.status === 'approved' ? 'approved' : b.status === 'pending' ? 'pending' : 'rejected')}${b.decidedBy ? html` (${b.decidedBy})` : ''}</td><td>${b.policyVersion ? html`v${b.policyVersion}` : ''}</td>
${admin ? html`<td>${b.status === 'pending' ? html`<form method="post" action="/software/baselines/approve" class="inline">${csrfField(r)}<input type="hidden" name="id" value="${b.id}"><button type="submit">${tr(L, 'approve')}</button></form> <form method="post" action="/software/baselines/reject" class="inline">${csrfField(r)}<input type="hidden" name="id" value="${b.id}"><button type="submit" class="danger">${tr(L, 'reject')}</button></form>` : ''}</td>` : ''}</tr>`,
)}</tbody></table>
${admin ? html`<form method="post" action="/software/baselines/import" class="row">${csrfField(r)}<label>${tr(L, 'importBaseline')}<textarea name="doc" rows="4" required></textarea></label><button type="submit">${tr(L, 'importBaseline')}</button></form>` : ''}
<h2>${tr(L, 'quarantine')}</h2>
<table id="quarantine"><thead><tr><th>${tr(L, 'time')}</th><th>${tr(L, 'terminal')}</th><th>${tr(L, 'path')}</th><th>SHA-256</th><th>${tr(L, 'status')}</th>${admin ? html`<th></th>` : ''}</tr></thead><tbody>
${quarantined.map(
  (q) => html`<tr><td>${fmtTime(q.quarantinedAt, L)}</td><td>${terminalLabel(names, q.agentId)}</td><td class="data">${safeText(q.path, 300)}</td><td><code>${q.sha256.slice(0, 16)}…</code></td><td>${q.state}${q.error ? html` (${safeText(q.error, 100)})` : ''}</td>
${admin ? html`<td>${q.state === 'quarantined' || q.state === 'restore_failed' ? html`<form method="post" action="/software/quarantine/restore" class="inline">${csrfField(r)}<input type="hidden" name="agent" value="${q.agentId}"><input type="hidden" name="id" value="${q.id}"><button type="submit">${tr(L, 'restore')}</button></form>` : ''}</td>` : ''}</tr>`,
)}</tbody></table>`;
      return page(r, 'software', '/software', body);
    },
  },
  {
    method: 'POST',
    path: '/software/baselines/import',
    access: 'admin',
    maxBody: 16 * 1024 * 1024,
    handle(r) {
      refusedAsBadRequest(() => void importBaseline(r.ctx, field(r, 'doc', 12 * 1024 * 1024), r.session!.username));
      return redirect('/software?done=1');
    },
  },
  {
    method: 'POST',
    path: /^\/software\/baselines\/(approve|reject)$/,
    access: 'admin',
    handle(r) {
      const id = field(r, 'id', 40);
      refusedAsBadRequest(() => (r.api.params[0] === 'approve' ? void approveBaseline(r.ctx, id, r.session!.username) : rejectBaseline(r.ctx, id, r.session!.username)));
      return redirect('/software?done=1');
    },
  },
  {
    method: 'POST',
    path: '/software/quarantine/restore',
    access: 'admin',
    handle(r) {
      refusedAsBadRequest(() => void requestRestore(r.ctx, field(r, 'id', 80), r.session!.username, field(r, 'agent', 64) || undefined));
      return redirect('/software?done=1');
    },
  },
];
