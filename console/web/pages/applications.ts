/**
 * 申請: applications for a temporary USB exception sent by staff from their terminal (issue 15;
 * data and rules: console/usb/applications-store.ts). Everyone who may log in sees the list;
 * administrators and approvers approve (with a period up to the maximum) or reject (with a
 * comment). Every string here except our own labels came from a terminal: the html`` template
 * escapes it.
 */
import { APPLICATION_LIMITS } from '../../../protocol/policy-usb.js';
import { safeText } from '../../../protocol/text.js';
import { HttpError } from '../../module.js';
import { decideApplication, listApplications, type Application } from '../../usb/applications-store.js';
import { html } from '../html.js';
import { fmtTime, tr, type Lang, type MsgKey } from '../i18n.js';
import { terminalNames } from '../queries.js';
import { csrfField, field, page, redirect, refusedAsBadRequest, type WebReq, type WebRouteSpec } from '../web.js';
import { terminalLabel } from './common.js';

const mayDecide = (r: WebReq) => r.session?.role === 'admin' || r.session?.role === 'approver';

const STATUS: Record<Application['status'], MsgKey> = { pending: 'statusPending', approved: 'statusApproved', rejected: 'statusRejected' };

function deviceCell(a: Application) {
  const name = [a.manufacturer, a.product].filter((x) => x.trim() !== '').join(' ') || 'USB';
  return html`<span class="device">${safeText(name, 200)}</span> <code>${a.vendorId}:${a.productId}</code>${a.serial ? html` <small>S/N ${safeText(a.serial, 64)}</small>` : ''}`;
}

function decideForms(r: WebReq, a: Application, L: Lang) {
  if (!mayDecide(r)) return '';
  if (a.stale) return tr(L, 'applicationStale');
  // The applicant never decides their own application (the store refuses it too).
  if (a.staffUser.toLowerCase() === r.session!.username.toLowerCase()) return tr(L, 'forbidden');
  return html`<form method="post" action="/applications/${a.id}/approve" class="inline approve">${csrfField(r)}<label>${tr(L, 'approveHours')}<input type="number" name="hours" min="1" max="${String(APPLICATION_LIMITS.hoursMax)}" value="${String(Math.min(a.hours, APPLICATION_LIMITS.hoursMax))}" required></label><button type="submit">${tr(L, 'approveApplication')}</button></form>
<form method="post" action="/applications/${a.id}/reject" class="inline reject">${csrfField(r)}<label>${tr(L, 'comment')}<input name="comment" maxlength="${String(APPLICATION_LIMITS.commentMax)}"></label><button type="submit" class="danger">${tr(L, 'rejectApplication')}</button></form>`;
}

export const applicationPageRoutes: WebRouteSpec[] = [
  {
    method: 'GET',
    path: '/applications',
    access: 'session',
    handle(r) {
      const L = r.lang;
      const q = r.api.query;
      const pending = listApplications(r.ctx);
      const decided = listApplications(r.ctx, { all: true }).filter((a) => a.status !== 'pending').slice(0, 50);
      const names = terminalNames(r.ctx.db);
      const done = q.get('done');
      const body = html`${done === 'approved' ? html`<p class="ok" role="status">${tr(L, 'applicationApproved')}</p>` : done === 'rejected' ? html`<p class="ok" role="status">${tr(L, 'applicationRejected')}</p>` : ''}
<h2>${tr(L, 'applicationsPending')}</h2>
${
  pending.length === 0
    ? html`<p id="no-applications">${tr(L, 'noApplications')}</p>`
    : html`<table id="applications"><thead><tr><th>${tr(L, 'applicationRef')}</th><th>${tr(L, 'terminal')}</th><th>${tr(L, 'applicant')}</th><th>${tr(L, 'device')}</th><th>${tr(L, 'reason')}</th><th>${tr(L, 'requestedHours')}</th><th>${tr(L, 'appliedAt')}</th>${mayDecide(r) ? html`<th>${tr(L, 'action')}</th>` : ''}</tr></thead><tbody>
${pending.map(
  (a) => html`<tr data-id="${a.id}"><td><code>${safeText(a.ref, 16)}</code></td><td>${terminalLabel(names, a.agentId)}</td><td class="applicant">${safeText(a.staffUser, 64)}</td><td>${deviceCell(a)}</td><td class="reason">${safeText(a.reason, APPLICATION_LIMITS.reasonMax)}</td><td>${String(a.hours)}</td><td>${fmtTime(a.appliedAt, L)}</td>${mayDecide(r) ? html`<td class="actions">${decideForms(r, a, L)}</td>` : ''}</tr>`,
)}</tbody></table>`
}
<h2>${tr(L, 'applicationsDecided')}</h2>
<table id="decided"><thead><tr><th>${tr(L, 'applicationRef')}</th><th>${tr(L, 'terminal')}</th><th>${tr(L, 'applicant')}</th><th>${tr(L, 'device')}</th><th>${tr(L, 'status')}</th><th>${tr(L, 'decidedBy')}</th><th>${tr(L, 'expires')}</th><th>${tr(L, 'comment')}</th></tr></thead><tbody>
${decided.map(
  (a) => html`<tr data-id="${a.id}"><td><code>${safeText(a.ref, 16)}</code></td><td>${terminalLabel(names, a.agentId)}</td><td>${safeText(a.staffUser, 64)}</td><td>${deviceCell(a)}</td><td>${tr(L, STATUS[a.status])}</td><td>${a.decidedBy ?? ''}</td><td>${a.until ? fmtTime(a.until, L) : '—'}</td><td>${safeText(a.comment, APPLICATION_LIMITS.commentMax)}</td></tr>`,
)}</tbody></table>`;
      return page(r, 'applications', '/applications', body);
    },
  },
  {
    method: 'POST',
    path: /^\/applications\/(uxa-[0-9a-f]{12})\/(approve|reject)$/,
    access: 'approve',
    maxBody: 8 * 1024,
    handle(r) {
      const [id, action] = r.api.params as [string, 'approve' | 'reject'];
      const comment = field(r, 'comment', APPLICATION_LIMITS.commentMax);
      let hours: number | undefined;
      if (action === 'approve') {
        const h = field(r, 'hours', 16).trim();
        hours = /^\d{1,16}$/.test(h) ? Number(h) : NaN;
        if (!Number.isSafeInteger(hours) || hours < 1 || hours > APPLICATION_LIMITS.hoursMax) {
          throw new HttpError(400, 'invalid_request', `${tr(r.lang, 'approveHours')}: 1〜${APPLICATION_LIMITS.hoursMax}`);
        }
      }
      refusedAsBadRequest(() => {
        decideApplication(r.ctx, id, { decision: action, actor: r.session!.username, ...(hours !== undefined ? { hours } : {}), comment });
      });
      return redirect(`/applications?done=${action === 'approve' ? 'approved' : 'rejected'}`);
    },
  },
];
