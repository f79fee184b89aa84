/** コンソールアカウント: administrators and auditors of this console; own password change. */
import { generateSecret, generateURI } from 'otplib';
import { generatePassword } from '../../core/passwords.js';
import { HttpError } from '../../module.js';
import { accountLocked, addAccount, changePassword, listAccounts, setAccountDisabled, unlockAccount, USERNAME_RE } from '../auth.js';
import { html } from '../html.js';
import { fmtTime, tr } from '../i18n.js';
import { qrDataUri } from '../qr.js';
import { cookie, csrfField, field, isAdmin, page, redirect, refusedAsBadRequest, refusedAsBadRequestAsync, SESSION_COOKIE, type WebRouteSpec } from '../web.js';

const roleLabel = (role: string) => (role === 'admin' ? 'roleAdmin' : role === 'approver' ? 'roleApprover' : 'roleAuditor');

export const accountRoutes: WebRouteSpec[] = [
  {
    method: 'GET',
    path: '/accounts',
    access: 'session',
    handle(r) {
      const L = r.lang;
      const admin = isAdmin(r);
      const list = listAccounts(r.ctx.db);
      const q = r.api.query;
      const ended = Number(q.get('ended') ?? '0');
      const left = Number(q.get('left') ?? '0');
      const body = html`${q.get('done') ? html`<p class="ok" role="status">${tr(L, 'done')}</p>` : ''}${
        q.get('pw') === 'ok'
          ? html`<p class="ok" role="status" id="pw-result">${tr(L, 'passwordChanged')}${Number.isSafeInteger(ended) && ended > 0 ? html` ${tr(L, 'otherSessionsEnded').replace('{n}', String(ended))}` : ''}</p>`
          : ''
      }${
        q.get('pw') === 'bad'
          ? html`<p class="error" role="alert" id="pw-result">${tr(L, 'wrongPassword')}${Number.isSafeInteger(left) && left > 0 ? html` ${tr(L, 'triesLeft').replace('{n}', String(left))}` : ''}</p>`
          : ''
      }${q.get('pw') === 'busy' ? html`<p class="error" role="alert" id="pw-result">${tr(L, 'passwordChangeBusy')}</p>` : ''}${
        q.get('pw') === 'short' ? html`<p class="error" role="alert" id="pw-result">${tr(L, 'passwordTooShort')}</p>` : ''
      }
<table id="accounts"><thead><tr><th>${tr(L, 'account')}</th><th>${tr(L, 'role')}</th><th>${tr(L, 'status')}</th><th>${tr(L, 'createdAt')}</th>${admin ? html`<th>${tr(L, 'action')}</th>` : ''}</tr></thead><tbody>
${list.map((a) => {
  const locked = accountLocked(r.ctx.db, a.username);
  return html`<tr><td>${a.username}</td><td>${tr(L, roleLabel(a.role))}</td><td>${tr(L, a.disabled ? 'disabled' : 'active')}${locked ? html` <span class="badge sev-critical">${tr(L, 'locked')}</span>` : ''}</td><td>${fmtTime(a.createdAt, L)}</td>${
    admin
      ? html`<td class="actions">${a.username === r.session!.username ? '' : html`<form method="post" action="/accounts/${a.disabled ? 'enable' : 'disable'}" class="inline">${csrfField(r)}<input type="hidden" name="name" value="${a.username}"><button type="submit">${tr(L, a.disabled ? 'enable' : 'disable')}</button></form>`}${
          locked ? html`<form method="post" action="/accounts/unlock" class="inline">${csrfField(r)}<input type="hidden" name="name" value="${a.username}"><button type="submit">${tr(L, 'unlock')}</button></form>` : ''
        }</td>`
      : ''
  }</tr>`;
})}</tbody></table>
${admin ? html`<h2>${tr(L, 'addAccount')}</h2><form method="post" action="/accounts/add" class="row">${csrfField(r)}<label>${tr(L, 'username')}<input name="name" required maxlength="64" pattern="[A-Za-z0-9._@-]{1,64}"></label>
<label>${tr(L, 'role')}<select name="role"><option value="auditor">${tr(L, 'roleAuditor')}</option><option value="approver">${tr(L, 'roleApprover')}</option><option value="admin">${tr(L, 'roleAdmin')}</option></select></label><button type="submit">${tr(L, 'addAccount')}</button></form>` : ''}
<h2>${tr(L, 'changePassword')}</h2><form method="post" action="/accounts/password" class="row">${csrfField(r)}
<label>${tr(L, 'currentPassword')}<input type="password" name="current" required autocomplete="current-password" maxlength="1024"></label>
<label>${tr(L, 'newPassword')}<input type="password" name="next" required minlength="12" autocomplete="new-password" maxlength="1024"></label><button type="submit">${tr(L, 'changePassword')}</button></form>`;
      return page(r, 'accounts', '/accounts', body);
    },
  },
  {
    method: 'POST',
    path: '/accounts/add',
    access: 'admin',
    async handle(r) {
      const L = r.lang;
      const name = field(r, 'name', 64);
      const role = field(r, 'role', 10);
      if (!USERNAME_RE.test(name) || (role !== 'admin' && role !== 'auditor' && role !== 'approver')) throw new HttpError(400, 'invalid_request', tr(L, 'username'));
      const password = generatePassword();
      const secret = generateSecret();
      await refusedAsBadRequestAsync(() => addAccount(r.ctx, name, role, r.session!.username, { password, secret }));
      const uri = generateURI({ issuer: `Sekimori ${r.ctx.organisation()}`, label: name, secret });
      return page(
        r,
        'addAccount',
        '/accounts',
        html`<p class="warn">${tr(L, 'shownOnce')}</p><div class="enrol"><img class="qr" alt="QR" src="${qrDataUri(uri)}"><dl class="detail"><dt>${tr(L, 'username')}</dt><dd id="new-username">${name}</dd><dt>${tr(L, 'role')}</dt><dd>${tr(L, roleLabel(role))}</dd><dt>${tr(L, 'password')}</dt><dd><code id="new-password">${password}</code></dd><dt>${tr(L, 'secret')}</dt><dd><code id="new-secret">${secret}</code></dd></dl></div><p><a href="/accounts">${tr(L, 'backToList')}</a></p>`,
      );
    },
  },
  {
    method: 'POST',
    path: /^\/accounts\/(disable|enable|unlock)$/,
    access: 'admin',
    handle(r) {
      const name = field(r, 'name', 64);
      const action = r.api.params[0]!;
      refusedAsBadRequest(() => {
        if (action === 'unlock') unlockAccount(r.ctx, name, r.session!.username);
        else {
          if (name === r.session!.username) throw new Error(tr(r.lang, 'forbidden'));
          setAccountDisabled(r.ctx, name, action === 'disable', r.session!.username);
        }
      });
      return redirect('/accounts?done=1');
    },
  },
  {
    // Every account (auditors too) may change its own password: it changes nothing else.
    method: 'POST',
    path: '/accounts/password',
    access: 'session',
    async handle(r) {
      const next = field(r, 'next', 1024);
      const current = field(r, 'current', 1024);
      if (Array.from(next).length < 12) return redirect('/accounts?pw=short');
      const out = await changePassword(r.ctx, r.session!.username, r.cookies.get(SESSION_COOKIE) ?? '', current, next);
      switch (out.result) {
        case 'ok':
          return redirect(`/accounts?pw=ok&ended=${out.sessionsEnded}`);
        case 'wrong':
          return redirect(`/accounts?pw=bad&left=${out.left}`);
        case 'busy':
          return redirect('/accounts?pw=busy');
        case 'ended':
          // The session is gone: clear its cookie and say why on the login page.
          r.setCookies.push(cookie(SESSION_COOKIE, '', 0));
          return redirect('/login?ended=1');
      }
    },
  },
];
