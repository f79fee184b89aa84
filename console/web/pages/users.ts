/** 利用者と多要素認証: staff TOTP enrolment with an on-screen QR code, reset, recovery codes, lockouts, terminal assignment. */
import { safeText } from '../../../protocol/text.js';
import { listAgents } from '../../backbone/store.js';
import { assign, confirmUser, enrollUser, listUsers, MfaError, newRecoveryCodes, setDisabled, unlockUser, type Enrolment } from '../../mfa/store.js';
import type { OpenConsole } from '../../core/open-console.js';
import { HttpError, type ConsoleContext } from '../../module.js';
import { html, type Html } from '../html.js';
import { fmtTime, tr } from '../i18n.js';
import { qrDataUri } from '../qr.js';
import { terminalNames } from '../queries.js';
import { csrfField, field, isAdmin, page, redirect, type WebReq, type WebRouteSpec } from '../web.js';

/** Asks the feature registry (through the opened console), not the database: a table may outlive its module. */
export function mfaInstalled(ctx: ConsoleContext): boolean {
  const c = ctx as Partial<OpenConsole>;
  return typeof c.hasModule === 'function' && c.hasModule('mfa');
}

function guard<T>(r: WebReq, f: () => T): T {
  if (!mfaInstalled(r.ctx)) throw new HttpError(503, 'mfa_not_installed', tr(r.lang, 'mfaNotInstalled'));
  try {
    return f();
  } catch (e) {
    if (e instanceof MfaError) throw new HttpError(400, 'invalid_request', e.message);
    throw e;
  }
}

function actionButton(r: WebReq, action: string, user: string, label: string, cls = ''): Html {
  return html`<form method="post" action="/users/${action}" class="inline">${csrfField(r)}<input type="hidden" name="user" value="${user}"><button type="submit" class="${cls}">${label}</button></form>`;
}

function enrolmentView(r: WebReq, e: Enrolment): Html {
  const L = r.lang;
  return html`<p class="note">${tr(L, 'scanQr')}</p><p class="warn">${tr(L, 'shownOnce')}</p>
<div class="enrol"><img class="qr" id="totp-qr" alt="QR" src="${qrDataUri(e.uri)}">
<dl class="detail"><dt>${tr(L, 'user')}</dt><dd>${e.user}</dd><dt>${tr(L, 'secret')}</dt><dd><code id="totp-secret">${e.secret}</code></dd><dt>URI</dt><dd><code class="wrap">${e.uri}</code></dd></dl></div>
<h2>${tr(L, 'recoveryCodes')}</h2><ol class="codes" id="recovery-codes">${e.recoveryCodes.map((c) => html`<li><code>${c}</code></li>`)}</ol>
<form method="post" action="/users/confirm" class="row">${csrfField(r)}<input type="hidden" name="user" value="${e.user}">
<label>${tr(L, 'code')}<input name="code" inputmode="numeric" pattern="[0-9]{6,8}" maxlength="8" required autocomplete="off"></label><button type="submit">${tr(L, 'confirm')}</button></form>`;
}

export const userRoutes: WebRouteSpec[] = [
  {
    method: 'GET',
    path: '/users',
    access: 'session',
    handle(r) {
      const L = r.lang;
      if (!mfaInstalled(r.ctx)) return page(r, 'users', '/users', html`<p class="note">${tr(L, 'mfaNotInstalled')}</p>`);
      const users = listUsers(r.ctx);
      const agents = listAgents(r.ctx).filter((a) => a.status !== 'revoked');
      const names = terminalNames(r.ctx.db); // an id prefix where two terminals report the same name
      const admin = isAdmin(r);
      const msg = r.api.query.get('done') ? html`<p class="ok" role="status">${tr(L, 'done')}</p>` : '';
      const body = html`${msg}
${admin ? html`<form method="post" action="/users/enroll" class="row">${csrfField(r)}<label>${tr(L, 'user')}<input name="user" required maxlength="64"></label><button type="submit">${tr(L, 'enrollUser')}</button></form>` : ''}
<table id="mfa-users"><thead><tr><th>${tr(L, 'user')}</th><th>${tr(L, 'status')}</th><th>${tr(L, 'kind')}</th><th>${tr(L, 'failures')}</th><th>${tr(L, 'recoveryLeft')}</th><th>${tr(L, 'assigned')}</th>${admin ? html`<th>${tr(L, 'action')}</th>` : ''}</tr></thead><tbody>
${users.map(
  (u) => html`<tr><td>${u.user}</td><td>${tr(L, u.status === 'active' ? 'active' : u.status === 'pending' ? 'pending' : 'disabled')}${u.locked ? html` <span class="badge sev-critical">${tr(L, 'locked')} ${fmtTime(u.lockedUntil, L)}</span>` : ''}</td>
<td>${u.kind}${u.serial ? html` (${safeText(u.serial, 64)})` : ''}</td><td class="num">${u.failures}</td><td class="num">${u.recoveryLeft}</td>
<td>${u.terminals.map((t) => html`<span class="tag">${names.get(t) ?? t}${admin ? html` <form method="post" action="/users/unassign" class="inline">${csrfField(r)}<input type="hidden" name="user" value="${u.user}"><input type="hidden" name="terminal" value="${t}"><button type="submit" class="link" title="${tr(L, 'unassign')}">×</button></form>` : ''}</span> `)}
${admin ? html`<form method="post" action="/users/assign" class="inline">${csrfField(r)}<input type="hidden" name="user" value="${u.user}"><select name="terminal">${agents.map((a) => html`<option value="${a.id}">${names.get(a.id) ?? a.id.slice(0, 8)}</option>`)}</select><button type="submit">${tr(L, 'assignTerminal')}</button></form>` : ''}</td>
${admin ? html`<td class="actions">${actionButton(r, 'reset', u.user, tr(L, 'reset'))}${u.status === 'disabled' ? actionButton(r, 'enable', u.user, tr(L, 'enable')) : actionButton(r, 'disable', u.user, tr(L, 'disable'), 'danger')}${u.locked || u.failures > 0 ? actionButton(r, 'unlock', u.user, tr(L, 'unlock')) : ''}${actionButton(r, 'recovery', u.user, tr(L, 'newRecoveryCodes'))}</td>` : ''}</tr>`,
)}</tbody></table>`;
      return page(r, 'users', '/users', body);
    },
  },
  {
    method: 'POST',
    path: /^\/users\/(enroll|reset)$/,
    access: 'admin',
    handle(r) {
      const e = guard(r, () => enrollUser(r.ctx, field(r, 'user', 64), r.session!.username, { reset: r.api.params[0] === 'reset' }));
      return page(r, 'enrollUser', '/users', enrolmentView(r, e));
    },
  },
  {
    method: 'POST',
    path: '/users/confirm',
    access: 'admin',
    handle(r) {
      const L = r.lang;
      const user = field(r, 'user', 64);
      const ok = guard(r, () => confirmUser(r.ctx, user, field(r, 'code', 12).trim(), r.session!.username));
      return page(r, 'users', '/users', html`<p class="${ok ? 'ok' : 'error'}" role="status" id="confirm-result">${tr(L, ok ? 'confirmed' : 'confirmFailed')} (${user})</p><p><a href="/users">${tr(L, 'backToList')}</a></p>`, ok ? 200 : 422);
    },
  },
  {
    method: 'POST',
    path: '/users/recovery',
    access: 'admin',
    handle(r) {
      const L = r.lang;
      const user = field(r, 'user', 64);
      const codes = guard(r, () => newRecoveryCodes(r.ctx, user, r.session!.username));
      return page(r, 'users', '/users', html`<p class="warn">${tr(L, 'shownOnce')}</p><h2>${tr(L, 'recoveryCodes')}: ${user}</h2><ol class="codes">${codes.map((c) => html`<li><code>${c}</code></li>`)}</ol><p><a href="/users">${tr(L, 'backToList')}</a></p>`);
    },
  },
  {
    method: 'POST',
    path: /^\/users\/(disable|enable|unlock|assign|unassign)$/,
    access: 'admin',
    handle(r) {
      const action = r.api.params[0]!;
      const user = field(r, 'user', 64);
      const actor = r.session!.username;
      guard(r, () => {
        if (action === 'disable' || action === 'enable') setDisabled(r.ctx, user, action === 'disable', actor);
        else if (action === 'unlock') unlockUser(r.ctx, user, actor);
        else assign(r.ctx, user, field(r, 'terminal', 64), actor, action === 'unassign');
      });
      return redirect('/users?done=1');
    },
  },
];
