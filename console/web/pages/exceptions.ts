/**
 * 一時許可: time-limited exceptions for one device on one terminal (data and rules belong to the
 * removable-media module, console/usb). Requests are recorded by one administrator and decided by
 * another; an administrator may also grant at once. Recently blocked devices fill in the forms.
 */
import { isUsbDeviceData, readEventData } from '../../../protocol/event-data.js';
import { safeText } from '../../../protocol/text.js';
import { listAgents } from '../../backbone/store.js';
import { deviceSpecOf, exceptionDuration, parseDeviceSpec } from '../../usb/device.js';
import { decideRequest, grantException, listExceptions, listRequests, requestException, revokeException } from '../../usb/store.js';
import { HttpError } from '../../module.js';
import { html, qs } from '../html.js';
import { fmtTime, tr } from '../i18n.js';
import { eventPage, terminalNames } from '../queries.js';
import { csrfField, field, isAdmin, page, redirect, refusedAsBadRequest, type WebRouteSpec } from '../web.js';
import { terminalLabel } from './common.js';

const DURATIONS = ['30m', '1h', '2h', '4h', '8h', '1d', '3d', '7d'];
/** Longest device spec: VID:PID# and 255 serial bytes in hex, with room to spare. */
const DEVICE_MAX = 2100;

/**
 * The device spec that grants exactly the device of a usb.blocked event, or '' when the event
 * does not name a USB device. The key is the raw serial (serialHex), never the display serial:
 * that one is escaped and cut, and a grant made from it would never match. An event from an
 * agent before serialHex offers its display serial, as before (best effort).
 */
export function grantSpecOf(data: unknown): string {
  const d = readEventData('usb.blocked', data);
  if (!d || !isUsbDeviceData(d)) return '';
  if (d.serialHex) return deviceSpecOf({ vendorId: d.vendorId, productId: d.productId, serial: null, serialHex: d.serialHex });
  return deviceSpecOf({ vendorId: d.vendorId, productId: d.productId, serial: d.serial === '' ? null : d.serial });
}

/** What the blocked-device table shows: maker, product and the display serial (all safeText already). */
function deviceLabel(data: unknown): string {
  const d = readEventData('usb.blocked', data);
  if (!d) return '';
  if (!isUsbDeviceData(d)) return `${d.kind} ${d.device}`;
  return `${d.manufacturer} ${d.product} ${d.vendorId}:${d.productId}${d.serial ? ':' + d.serial : ''}`;
}

export const exceptionRoutes: WebRouteSpec[] = [
  {
    method: 'GET',
    path: '/exceptions',
    access: 'session',
    handle(r) {
      const L = r.lang;
      const q = r.api.query;
      const all = q.get('all') === '1';
      const list = listExceptions(r.ctx, { all });
      const names = terminalNames(r.ctx.db); // an id prefix where two terminals report the same name
      const agents = listAgents(r.ctx).filter((a) => a.status !== 'revoked');
      const admin = isAdmin(r);
      const preAgent = q.get('agent') ?? '';
      const preDevice = q.get('device') ?? '';
      const preUser = q.get('user') ?? '';
      const requests = listRequests(r.ctx);
      const blocked = eventPage(r.ctx.db, { type: 'usb.blocked' }, 20).events;
      const body = html`${q.get('done') ? html`<p class="ok" role="status">${tr(L, 'done')}</p>` : ''}
<p class="filters"><a href="/exceptions" class="${all ? '' : 'active'}">${tr(L, 'active')}</a> <a href="/exceptions?all=1" class="${all ? 'active' : ''}">${tr(L, 'all')}</a></p>
<table id="exceptions"><thead><tr><th>ID</th><th>${tr(L, 'terminal')}</th><th>${tr(L, 'device')}</th><th>${tr(L, 'status')}</th><th>${tr(L, 'expires')}</th><th>${tr(L, 'createdBy')}</th><th>${tr(L, 'reason')}</th>${admin ? html`<th></th>` : ''}</tr></thead><tbody>
${list.map(
  (x) => html`<tr><td><code>${x.id}</code></td><td>${terminalLabel(names, x.agentId)}</td><td><code>${x.vendorId}:${x.productId}${x.serial ? ':' + safeText(x.serial, 128) : ''}</code>${x.serialHex ? html` <small class="serial-hex" title="serial bytes (hex)">#${x.serialHex.slice(0, 64)}${x.serialHex.length > 64 ? '…' : ''}</small>` : ''} (${x.access})</td>
<td>${x.revokedAt ? html`${tr(L, 'revoked')} (${x.revokedBy ?? ''})` : x.active ? tr(L, 'active') : '—'}</td><td>${fmtTime(x.expiresAt, L)}</td><td>${x.grantedBy}</td><td>${safeText(x.reason, 200)}</td>
${admin ? html`<td>${x.active ? html`<form method="post" action="/exceptions/revoke" class="inline">${csrfField(r)}<input type="hidden" name="id" value="${x.id}"><button type="submit" class="danger">${tr(L, 'revoke')}</button></form>` : ''}</td>` : ''}</tr>`,
)}</tbody></table>
<h2>${tr(L, 'exceptionRequests')}</h2>
${requests.length === 0 ? html`<p>${tr(L, 'noRequests')}</p>` : html`<table id="requests"><thead><tr><th>ID</th><th>${tr(L, 'terminal')}</th><th>${tr(L, 'device')}</th><th>${tr(L, 'period')}</th><th>${tr(L, 'staffUser')}</th><th>${tr(L, 'requestedBy')}</th><th>${tr(L, 'reason')}</th>${admin ? html`<th></th>` : ''}</tr></thead><tbody>
${requests.map(
  (q) => html`<tr><td><code>${q.id}</code></td><td>${terminalLabel(names, q.agentId)}</td><td><code>${q.vendorId}:${q.productId}${q.serial ? ':' + safeText(q.serial, 128) : ''}</code> (${q.access})</td><td>${Math.round(q.forMs / 60_000)} min</td>
<td>${safeText(q.staffUser, 64)}</td><td>${safeText(q.requestedBy, 64)}</td><td>${safeText(q.reason, 200)}</td>
${admin ? html`<td>${q.requestedBy === r.session!.username ? tr(L, 'ownRequest') : html`<form method="post" action="/exceptions/decide" class="inline">${csrfField(r)}<input type="hidden" name="id" value="${q.id}"><button type="submit" name="decision" value="approve">${tr(L, 'approve')}</button> <button type="submit" name="decision" value="reject" class="danger">${tr(L, 'reject')}</button></form>`}</td>` : ''}</tr>`,
)}</tbody></table>`}
${admin ? html`<h2>${tr(L, 'requestException')} / ${tr(L, 'grantNow')}</h2><form method="post" action="/exceptions/grant" class="row" id="grant-form">${csrfField(r)}
<label>${tr(L, 'terminal')}<select name="agent">${agents.map((a) => html`<option value="${a.id}" ${a.id === preAgent ? 'selected' : ''}>${safeText(a.hostname, 40)} (${a.id.slice(0, 8)})</option>`)}</select></label>
<label>${tr(L, 'device')} (VID:PID[:SERIAL] / VID:PID#HEX)<input name="device" required maxlength="${String(DEVICE_MAX)}" value="${preDevice}"></label>
<label>${tr(L, 'period')}<select name="for">${DURATIONS.map((d) => html`<option ${d === '2h' ? 'selected' : ''}>${d}</option>`)}</select></label>
<label>${tr(L, 'action')}<select name="access"><option value="readonly">readonly</option><option value="allow">allow</option></select></label>
<label>${tr(L, 'staffUser')}<input name="staff" maxlength="64" value="${preUser}"></label>
<label>${tr(L, 'reason')}<input name="reason" required maxlength="200"></label>
<button type="submit" name="mode" value="request">${tr(L, 'requestException')}</button> <button type="submit" name="mode" value="grant">${tr(L, 'grantNow')}</button></form>` : ''}
<h2>usb.blocked — ${tr(L, 'recentEvents')}</h2>
<table><thead><tr><th>${tr(L, 'time')}</th><th>${tr(L, 'terminal')}</th><th>${tr(L, 'user')}</th><th>${tr(L, 'device')}</th>${admin ? html`<th></th>` : ''}</tr></thead><tbody>
${blocked.map((e) => {
  const spec = grantSpecOf(e.data);
  return html`<tr><td><a href="/events/${e.rid}">${fmtTime(e.ts, L)}</a></td><td>${terminalLabel(names, e.terminalId)}</td><td>${safeText(e.user ?? '', 64)}</td><td>${safeText(deviceLabel(e.data), 200)}</td>${
    admin ? html`<td>${spec ? html`<a href="/exceptions${qs({ agent: e.terminalId, device: spec, user: e.user ?? '' })}#grant-form">${tr(L, 'exceptions')}</a>` : ''}</td>` : ''
  }</tr>`;
})}</tbody></table>`;
      return page(r, 'exceptions', '/exceptions', body);
    },
  },
  {
    method: 'POST',
    path: '/exceptions/grant',
    access: 'admin',
    handle(r) {
      const agentId = field(r, 'agent', 64);
      const device = field(r, 'device', DEVICE_MAX).trim();
      const forMs = exceptionDuration(field(r, 'for', 10));
      const access = field(r, 'access', 10);
      const reason = field(r, 'reason', 200).trim();
      if (!parseDeviceSpec(device)) throw new HttpError(400, 'invalid_request', 'VID:PID[:SERIAL] / VID:PID#HEX (hex)');
      if (forMs === null) throw new HttpError(400, 'invalid_request', `${tr(r.lang, 'period')}: ${DURATIONS.join(', ')}`);
      if (access !== 'allow' && access !== 'readonly') throw new HttpError(400, 'invalid_request', 'access: allow|readonly');
      if (!reason) throw new HttpError(400, 'invalid_request', `${tr(r.lang, 'reason')}: required`);
      refusedAsBadRequest(() => {
        if (field(r, 'mode', 10) === 'request') {
          requestException(r.ctx, { agentId, device, forMs, access, reason, staffUser: field(r, 'staff', 64).trim(), actor: r.session!.username });
        } else grantException(r.ctx, { agentId, device, forMs, reason, access, actor: r.session!.username });
      });
      return redirect('/exceptions?done=1');
    },
  },
  {
    method: 'POST',
    path: '/exceptions/revoke',
    access: 'admin',
    handle(r) {
      const id = field(r, 'id', 40);
      refusedAsBadRequest(() => {
        revokeException(r.ctx, id, r.session!.username);
      });
      return redirect('/exceptions?done=1');
    },
  },
  {
    method: 'POST',
    path: '/exceptions/decide',
    access: 'admin',
    handle(r) {
      const decision = field(r, 'decision', 10);
      if (decision !== 'approve' && decision !== 'reject') throw new HttpError(400, 'invalid_request', 'decision: approve|reject');
      refusedAsBadRequest(() => {
        decideRequest(r.ctx, field(r, 'id', 40), decision, r.session!.username);
      });
      return redirect('/exceptions?done=1');
    },
  },
];
