/**
 * The web console's request plumbing: security headers on every response, sessions, the
 * same-origin + CSRF-token check on every POST, the admin-only gate, and the page layout.
 */
import { randomBytes } from 'node:crypto';
import { HttpError, type ApiRequest, type ApiResponse, type ConsoleContext, type Route } from '../module.js';
import { loadSession, parseCookies, sameOrigin, sameSecret, type Session } from './auth.js';
import { html, type Html } from './html.js';
import { parseLang, tr, type Lang, type MsgKey } from './i18n.js';

// Kept importable from here; they live with the HTTP layer, which puts them on every answer.
export { CSP, SECURITY_HEADERS } from '../core/http-headers.js';
import { SECURITY_HEADERS } from '../core/http-headers.js';

export const SESSION_COOKIE = '__Host-sekimori_session';
export const PRELOGIN_COOKIE = '__Host-sekimori_login';
export const LANG_COOKIE = '__Host-sekimori_lang';

export function cookie(name: string, value: string, maxAgeSeconds?: number): string {
  return `${name}=${value}; Path=/; Secure; HttpOnly; SameSite=Strict${maxAgeSeconds !== undefined ? `; Max-Age=${maxAgeSeconds}` : ''}`;
}

export interface WebReq {
  api: ApiRequest;
  ctx: ConsoleContext;
  lang: Lang;
  cookies: Map<string, string>;
  session: Session | null;
  form: URLSearchParams;
  /** Extra Set-Cookie headers to send with the response (e.g. a fresh pre-login cookie). */
  setCookies: string[];
}

/** Synchronous for pages; a Promise where work runs off the event loop (password checks). */
export type Handler = (r: WebReq) => ApiResponse | Promise<ApiResponse>;

export interface WebRouteSpec {
  method: 'GET' | 'POST';
  path: string | RegExp;
  /**
   * 'public': login page; 'session': any logged-in account except approvers (see APPROVER_MAY);
   * 'admin': POST that changes something; 'approve': deciding applications (administrators and approvers).
   */
  access: 'public' | 'session' | 'admin' | 'approve';
  maxBody?: number;
  handle: Handler;
}

function withHeaders(r: ApiResponse, setCookies: string[]): ApiResponse {
  const headers: Record<string, string | string[]> = { ...SECURITY_HEADERS, ...r.headers };
  if (setCookies.length) headers['set-cookie'] = [...setCookies, ...((r.headers?.['set-cookie'] as string[] | undefined) ?? [])];
  return { ...r, headers };
}

export function redirect(location: string, status = 303): ApiResponse {
  return { status, headers: { location }, body: '' };
}

export function htmlResponse(status: number, body: Html): ApiResponse {
  return { status, headers: { 'content-type': 'text/html; charset=utf-8' }, body: '<!doctype html>\n' + body.value };
}

/** Only local paths, so `next=` cannot send anyone to another site. */
export function safeNext(v: string | null | undefined): string {
  return v && /^\/(?![/\\])[\x21-\x7e]{0,500}$/.test(v) ? v : '/';
}

const NAV: { href: string; key: MsgKey }[] = [
  { href: '/', key: 'dashboard' },
  { href: '/events', key: 'events' },
  { href: '/terminals', key: 'terminals' },
  { href: '/posture', key: 'posture' },
  { href: '/policy/forms', key: 'policy' },
  { href: '/software', key: 'software' },
  { href: '/software/inventory', key: 'inventory' },
  { href: '/users', key: 'users' },
  { href: '/exceptions', key: 'exceptions' },
  { href: '/devices', key: 'devices' },
  { href: '/exports', key: 'exportLog' },
  { href: '/archives', key: 'archives' },
  { href: '/report', key: 'report' },
  { href: '/accounts', key: 'accounts' },
  { href: '/applications', key: 'applications' },
];

/**
 * An approver decides applications and nothing else: besides 'approve' routes it may only see its
 * own account page (to change its password) and log out. Read access to the rest (events, users,
 * terminals) is not what the role is for.
 */
const APPROVER_MAY = new Set(['GET /accounts', 'POST /accounts/password', 'POST /logout', 'GET /applications']);

const roleKey = (role: string | undefined): MsgKey => (role === 'admin' ? 'roleAdmin' : role === 'approver' ? 'roleApprover' : 'roleAuditor');

export function layout(r: WebReq, title: string, active: string, body: Html, opts: { printable?: boolean } = {}): Html {
  const L = r.lang;
  const s = r.session;
  const here = r.api.path + (r.api.query.toString() ? '?' + r.api.query.toString() : '');
  return html`<html lang="${L}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} — ${tr(L, 'appName')}</title><link rel="stylesheet" href="/static/console.css"><script src="/static/console.js" defer></script>
${s ? html`<meta name="csrf-token" content="${s.csrf}">` : ''}</head>
<body class="${opts.printable ? 'printable' : ''}">
<header class="top no-print"><span class="brand">${tr(L, 'appName')}</span><span class="org">${r.ctx.organisation()}</span>
<nav>${s ? NAV.filter((n) => s.role !== 'approver' || APPROVER_MAY.has(`GET ${n.href}`)).map((n) => html`<a href="${n.href}" class="${active === n.href ? 'active' : ''}">${tr(L, n.key)}</a>`) : ''}</nav>
<span class="who">${s ? html`${s.username} (${tr(L, roleKey(s.role))})` : ''}</span>
<a class="lang" href="/lang?l=${L === 'ja' ? 'en' : 'ja'}&amp;next=${encodeURIComponent(here)}">${tr(L, 'language')}</a>
${s ? html`<form method="post" action="/logout" class="inline"><input type="hidden" name="_csrf" value="${s.csrf}"><button type="submit">${tr(L, 'logout')}</button></form>` : ''}
</header>
${s?.role === 'auditor' ? html`<p class="banner no-print">${tr(L, 'roleAuditor')}: ${tr(L, 'readOnly')}</p>` : ''}${s?.role === 'approver' ? html`<p class="banner no-print">${tr(L, 'roleApprover')}: ${tr(L, 'approverOnly')}</p>` : ''}
<main><h1>${title}</h1>${body}</main></body></html>`;
}

export function page(r: WebReq, titleKey: MsgKey, active: string, body: Html, status = 200, opts: { printable?: boolean } = {}): ApiResponse {
  return htmlResponse(status, layout(r, tr(r.lang, titleKey), active, body, opts));
}

export function errorPage(r: WebReq, status: number, message: string): ApiResponse {
  return htmlResponse(status, layout(r, tr(r.lang, status === 404 ? 'notFound' : 'error'), '', html`<p class="error" role="alert">${message}</p><p><a href="/">${tr(r.lang, 'dashboard')}</a></p>`));
}

/** Hidden CSRF field for forms. */
export function csrfField(r: WebReq): Html {
  return html`<input type="hidden" name="_csrf" value="${r.session?.csrf ?? ''}">`;
}

export function isAdmin(r: WebReq): boolean {
  return r.session?.role === 'admin';
}

function parseForm(req: ApiRequest): URLSearchParams {
  if (req.method !== 'POST') return new URLSearchParams();
  const type = String(req.headers['content-type'] ?? '');
  if (!type.startsWith('application/x-www-form-urlencoded')) throw new HttpError(415, 'unsupported_media_type', 'expected a form');
  return new URLSearchParams(req.body.toString('utf8'));
}

export function toRoute(ctx: ConsoleContext, spec: WebRouteSpec): Route {
  return {
    method: spec.method,
    path: spec.path,
    auth: 'none',
    maxBody: spec.maxBody ?? 64 * 1024,
    handle(api) {
      const cookies = parseCookies(api.headers.cookie);
      const r: WebReq = { api, ctx, lang: parseLang(cookies.get(LANG_COOKIE)), cookies, session: null, form: new URLSearchParams(), setCookies: [] };
      const failed = (e: unknown): ApiResponse => {
        if (e instanceof HttpError) {
          const page = errorPage(r, e.status, e.message);
          return withHeaders({ ...page, headers: { ...page.headers, ...e.headers } }, r.setCookies);
        }
        throw e;
      };
      try {
        r.session = loadSession(ctx.db, cookies.get(SESSION_COOKIE));
        if (api.method === 'POST') {
          // Same-origin first: a forged cross-site POST is refused before anything else is read.
          if (!sameOrigin({ origin: api.headers.origin, referer: api.headers.referer, host: api.headers.host })) {
            // Anyone can send these: one event per address and minute, the rest counted (folding.ts).
            ctx.recordRepeated(
              { type: 'admin.csrf_refused', severity: 'warning', user: r.session?.username ?? null, data: { path: api.path, origin: String(api.headers.origin ?? '').slice(0, 200), from: api.remoteAddress } },
              `csrf_refused:${api.remoteAddress}`,
            );
            return withHeaders(errorPage(r, 403, tr(r.lang, 'csrfFailed')), r.setCookies);
          }
          r.form = parseForm(api);
          const token = r.form.get('_csrf') ?? '';
          const expected = spec.access === 'public' ? (cookies.get(PRELOGIN_COOKIE) ?? '') : (r.session?.csrf ?? '');
          if (r.session === null && spec.access !== 'public') return withHeaders(redirect('/login?expired=1'), r.setCookies);
          if (!expected || !sameSecret(token, expected)) {
            ctx.recordRepeated({ type: 'admin.csrf_refused', severity: 'warning', user: r.session?.username ?? null, data: { path: api.path, reason: 'token', from: api.remoteAddress } }, `csrf_refused:${api.remoteAddress}`);
            return withHeaders(errorPage(r, 403, tr(r.lang, 'csrfFailed')), r.setCookies);
          }
        }
        if (spec.access !== 'public' && r.session === null) {
          return withHeaders(redirect('/login?next=' + encodeURIComponent(api.path + (api.query.toString() ? '?' + api.query.toString() : ''))), r.setCookies);
        }
        const role = r.session?.role;
        if (role === 'approver' && spec.access !== 'public' && spec.access !== 'approve' && !APPROVER_MAY.has(`${api.method} ${api.path}`)) {
          if (api.method === 'GET' && api.path === '/') return withHeaders(redirect('/applications'), r.setCookies);
          ctx.recordEvent({ type: 'admin.forbidden', severity: 'warning', user: r.session?.username ?? null, data: { path: api.path, method: api.method, role } });
          return withHeaders(errorPage(r, 403, tr(r.lang, 'approverOnly')), r.setCookies);
        }
        if (spec.access === 'approve' && role !== 'admin' && role !== 'approver') {
          ctx.recordEvent({ type: 'admin.forbidden', severity: 'warning', user: r.session?.username ?? null, data: { path: api.path, method: api.method, role } });
          return withHeaders(errorPage(r, 403, tr(r.lang, 'forbidden')), r.setCookies);
        }
        if (spec.access === 'admin' && r.session?.role !== 'admin') {
          ctx.recordEvent({ type: 'admin.forbidden', severity: 'warning', user: r.session?.username ?? null, data: { path: api.path, method: api.method, role: r.session?.role } });
          return withHeaders(errorPage(r, 403, tr(r.lang, 'readOnly')), r.setCookies);
        }
        const out = spec.handle(r);
        // Pages stay synchronous (callers such as bench/ rely on that); only async handlers return a Promise.
        return out instanceof Promise ? out.then((res) => withHeaders(res, r.setCookies), failed) : withHeaders(out, r.setCookies);
      } catch (e) {
        return failed(e);
      }
    },
  };
}

export function newPreloginToken(): string {
  return randomBytes(24).toString('base64url');
}

/** Reads a form field with a length bound. */
export function field(r: WebReq, name: string, max = 200): string {
  const v = r.form.get(name) ?? '';
  if (v.length > max) throw new HttpError(400, 'invalid_request', `${name}: too long`);
  return v;
}

/** Runs a domain action whose errors are refusals (unknown id, wrong state, …), not bugs: 400 with its message. */
export function refusedAsBadRequest(f: () => void): void {
  try {
    f();
  } catch (e) {
    if (e instanceof HttpError) throw e;
    throw new HttpError(400, 'invalid_request', (e as Error).message);
  }
}

/** The same for an asynchronous action (e.g. one that hashes a password). */
export async function refusedAsBadRequestAsync(f: () => Promise<void>): Promise<void> {
  try {
    await f();
  } catch (e) {
    if (e instanceof HttpError) throw e;
    throw new HttpError(400, 'invalid_request', (e as Error).message);
  }
}
