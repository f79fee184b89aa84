/** Login (password + TOTP), logout and the language switch. */
import { attemptLogin, createSession, deleteSession, LOGIN_POLICY } from '../auth.js';
import { html } from '../html.js';
import { tr } from '../i18n.js';
import { cookie, field, LANG_COOKIE, layout, htmlResponse, newPreloginToken, PRELOGIN_COOKIE, redirect, safeNext, SESSION_COOKIE, type WebReq, type WebRouteSpec } from '../web.js';

function loginForm(r: WebReq, message: string | null, status = 200) {
  const L = r.lang;
  const pre = newPreloginToken();
  r.setCookies.push(cookie(PRELOGIN_COOKIE, pre, 1800));
  const next = safeNext(r.api.query.get('next') ?? r.form.get('next'));
  const body = html`${message ? html`<p class="error" role="alert">${message}</p>` : ''}
<form method="post" action="/login" class="login" autocomplete="off">
<input type="hidden" name="_csrf" value="${pre}"><input type="hidden" name="next" value="${next}">
<label>${tr(L, 'username')}<input name="username" autocomplete="username" required maxlength="64" autofocus></label>
<label>${tr(L, 'password')}<input name="password" type="password" autocomplete="current-password" required maxlength="1024"></label>
<label>${tr(L, 'code')}<input name="code" inputmode="numeric" pattern="[0-9]{6}" autocomplete="one-time-code" required maxlength="6"></label>
<button type="submit">${tr(L, 'login')}</button></form>`;
  return htmlResponse(status, layout(r, tr(L, 'login'), '', body));
}

export const loginRoutes: WebRouteSpec[] = [
  {
    method: 'GET',
    path: '/login',
    access: 'public',
    handle(r) {
      if (r.session) return redirect(safeNext(r.api.query.get('next')));
      const q = r.api.query;
      return loginForm(r, q.get('ended') ? tr(r.lang, 'passwordGuessEnded') : q.get('expired') ? tr(r.lang, 'sessionExpired') : null);
    },
  },
  {
    method: 'POST',
    path: '/login',
    access: 'public',
    maxBody: 8 * 1024,
    async handle(r) {
      const out = await attemptLogin(r.ctx, field(r, 'username', 200), field(r, 'password', 2000), field(r, 'code', 20).trim(), r.api.remoteAddress);
      if ('refused' in out) {
        // Limits, not credentials: the same for every account, so it tells nothing about any of them.
        const s = Math.max(1, Math.ceil(out.retryAfterSeconds));
        const msg = out.refused === 'busy' ? tr(r.lang, 'loginBusy') : tr(r.lang, 'loginThrottled').replace('{s}', String(s));
        const res = loginForm(r, msg, out.refused === 'busy' ? 503 : 429);
        return { ...res, headers: { ...res.headers, 'retry-after': String(s) } };
      }
      // One message for every failure (unknown account, wrong password or code, disabled, locked):
      // a different one for "locked" told which accounts exist.
      if (!out.verdict.ok) return loginForm(r, tr(r.lang, 'loginFailed'), 401);
      const s = createSession(r.ctx.db, out.account!.username);
      r.setCookies.push(cookie(SESSION_COOKIE, s.token, Math.floor(LOGIN_POLICY.absoluteMs / 1000)), cookie(PRELOGIN_COOKIE, '', 0));
      return redirect(safeNext(r.form.get('next')));
    },
  },
  {
    method: 'POST',
    path: '/logout',
    access: 'session',
    handle(r) {
      deleteSession(r.ctx.db, r.cookies.get(SESSION_COOKIE));
      r.ctx.recordEvent({ type: 'admin.logout', user: r.session!.username, data: {} });
      r.setCookies.push(cookie(SESSION_COOKIE, '', 0));
      return redirect('/login');
    },
  },
  {
    method: 'GET',
    path: '/lang',
    access: 'public',
    handle(r) {
      const l = r.api.query.get('l') === 'en' ? 'en' : 'ja';
      r.setCookies.push(cookie(LANG_COOKIE, l, 365 * 86400));
      return redirect(safeNext(r.api.query.get('next')));
    },
  },
];
