/**
 * ポリシー: edit each section as JSON, validate with policyBodyErrors, review a diff, then sign and
 * publish a new version. "Roll forward" publishes an old version's content as a new version
 * (agents refuse lower versions, by design).
 */
import { policyBodyErrors, type PolicyDocument } from '../../../protocol/policy.js';
import { PolicyValidationError } from '../../core/open-console.js';
import { HttpError } from '../../module.js';
import { changed, diffLines } from '../diff.js';
import { html, type Html } from '../html.js';
import { fmtTime, tr } from '../i18n.js';
import { csrfField, field, isAdmin, page, type WebReq, type WebRouteSpec } from '../web.js';
import { bodyOf, confirmForm, diffView, policyFormRoutes, policyTabs, pretty, VIA } from './policy-forms.js';

// The devices page and tests take these from here, where they always were.
export { bodyOf, pretty, proposalView } from './policy-forms.js';

export const SECTIONS = ['agent', 'usb', 'mfa', 'software'] as const;
type Section = string;

/**
 * The sections the JSON view edits: the four, plus any other section the policy in force carries
 * (an optional one added later), so editing here never drops it.
 */
export function sectionsOf(doc: PolicyDocument): string[] {
  const extra = Object.keys(bodyOf(doc)).filter((k) => !(SECTIONS as readonly string[]).includes(k) && /^[A-Za-z][A-Za-z0-9]{0,31}$/.test(k));
  return [...SECTIONS, ...extra];
}

/** Parses the section textareas into a body; reports JSON errors per section. */
export function parseSections(get: (k: Section) => string, sections: readonly string[] = SECTIONS): { body: Record<string, unknown>; errors: string[] } {
  const body: Record<string, unknown> = {};
  const errors: string[] = [];
  for (const s of sections) {
    try {
      body[s] = JSON.parse(get(s));
    } catch (e) {
      errors.push(`policy.${s}: JSON ${(e as Error).message}`);
    }
  }
  if (errors.length === 0) errors.push(...policyBodyErrors(body));
  return { body, errors };
}

function history(r: WebReq): Html {
  const L = r.lang;
  const rows = r.ctx.db.prepare('SELECT version, created_at, created_by FROM policies ORDER BY version DESC LIMIT 200').all() as { version: number; created_at: string; created_by: string }[];
  return html`<section><h2>${tr(L, 'history')}</h2><table id="policy-history"><thead><tr><th>${tr(L, 'version')}</th><th>${tr(L, 'createdAt')}</th><th>${tr(L, 'createdBy')}</th><th></th></tr></thead><tbody>${rows.map(
    (v) => html`<tr><td>v${v.version}</td><td>${fmtTime(v.created_at, L)}</td><td>${v.created_by}</td><td><a href="/policy/v/${v.version}">${tr(L, 'view')}</a></td></tr>`,
  )}</tbody></table></section>`;
}

function editor(r: WebReq, values: Record<Section, string>, base: number, errors: string[]): Html {
  const L = r.lang;
  const admin = isAdmin(r);
  return html`${errors.length ? html`<div class="error" role="alert" id="policy-errors"><p>${tr(L, 'validationErrors')}</p><ul>${errors.slice(0, 100).map((e) => html`<li>${e}</li>`)}</ul></div>` : ''}
<p class="note">${tr(L, 'policyHelp')}</p>
<form method="post" action="/policy/preview" id="policy-form">${csrfField(r)}<input type="hidden" name="base" value="${base}">
${Object.keys(values).map((s) => html`<fieldset><legend>${tr(L, 'section')}: ${s}</legend><textarea name="${s}" rows="${Math.min(30, Math.max(4, values[s].split('\n').length + 1))}" spellcheck="false" ${admin ? '' : 'readonly'}>${values[s]}</textarea></fieldset>`)}
${admin ? html`<button type="submit">${tr(L, 'preview')}</button>` : ''}</form>`;
}

function currentValues(doc: PolicyDocument): Record<Section, string> {
  const body = bodyOf(doc) as unknown as Record<string, unknown>;
  return Object.fromEntries(sectionsOf(doc).map((s) => [s, pretty(body[s])]));
}

export const policyRoutes: WebRouteSpec[] = [
  {
    method: 'GET',
    path: '/policy',
    access: 'session',
    handle(r) {
      const cur = r.ctx.currentPolicy().policy;
      const L = r.lang;
      const body = html`${policyTabs(L, 'json')}<p>${tr(L, 'currentPolicy')}: <strong id="policy-version">v${cur.version}</strong> (${fmtTime(cur.issuedAt, L)}, ${cur.issuedBy})</p>
${editor(r, currentValues(cur), cur.version, [])}${history(r)}`;
      return page(r, 'policy', '/policy/forms', body);
    },
  },
  {
    method: 'POST',
    path: '/policy/preview',
    access: 'admin',
    maxBody: 2 * 1024 * 1024,
    handle(r) {
      const L = r.lang;
      const cur = r.ctx.currentPolicy().policy;
      const sections = sectionsOf(cur);
      const values = Object.fromEntries(sections.map((s) => [s, field(r, s, 512 * 1024)])) as Record<Section, string>;
      const base = Number(field(r, 'base', 12));
      const { body, errors } = parseSections((s) => values[s] ?? '', sections);
      if (errors.length) return page(r, 'policy', '/policy/forms', editor(r, values, base, errors), 422);
      const d = diffLines(pretty(bodyOf(cur)), pretty(body));
      const out = html`<p>${tr(L, 'currentPolicy')}: v${cur.version} → v${cur.version + 1}</p><h2>${tr(L, 'diff')}</h2>${diffView(d, L)}
${changed(d) ? confirmForm(r, body, base, null) : ''}<p><a href="/policy">${tr(L, 'policy')}</a></p>`;
      return page(r, 'policy', '/policy/forms', out);
    },
  },
  {
    method: 'POST',
    path: '/policy/publish',
    access: 'admin',
    maxBody: 2 * 1024 * 1024,
    handle(r) {
      const L = r.lang;
      const actor = r.session!.username;
      const base = Number(field(r, 'base', 12));
      const fromRaw = field(r, 'from', 12);
      const via = field(r, 'via', 130);
      if (via && !VIA.test(via)) throw new HttpError(400, 'invalid_request', 'via: malformed');
      let body: unknown;
      try {
        body = JSON.parse(field(r, 'body', 1024 * 1024));
      } catch {
        throw new HttpError(400, 'invalid_request', 'body: not JSON');
      }
      const cur = r.ctx.currentPolicy().policy;
      // Optimistic concurrency: what was reviewed must still be what it replaces.
      if (base !== cur.version) return page(r, 'policy', '/policy/forms', html`<p class="error" role="alert">${tr(L, 'staleBase')}</p><p><a href="/policy">${tr(L, 'policy')}</a></p>`, 409);
      const before = pretty(bodyOf(cur));
      let signed;
      try {
        signed = r.ctx.publishPolicy(body, actor);
      } catch (e) {
        if (e instanceof PolicyValidationError) return page(r, 'policy', '/policy/forms', editor(r, currentValues(cur), cur.version, e.errors), 422);
        throw e;
      }
      const d = diffLines(before, pretty(bodyOf(signed.policy)));
      const b0 = bodyOf(cur) as unknown as Record<string, unknown>;
      const b1 = bodyOf(signed.policy) as unknown as Record<string, unknown>;
      const sections = [...new Set([...Object.keys(b0), ...Object.keys(b1)])].filter((s) => pretty(b0[s]) !== pretty(b1[s]));
      r.ctx.recordEvent({
        type: 'admin.policy_changed',
        user: actor,
        data: {
          before: { version: cur.version },
          after: { version: signed.policy.version },
          sections,
          ...(fromRaw ? { rolledForwardFrom: Number(fromRaw) } : {}),
          ...(via ? { via } : {}),
          diff: d.filter((l) => l.op !== ' ').slice(0, 300).map((l) => `${l.op} ${l.text}`),
        },
      });
      const out = html`<p class="ok" role="status" id="published">${tr(L, 'published')}: v${signed.policy.version}</p>${diffView(d, L)}<p><a href="/policy">${tr(L, 'policy')}</a></p>`;
      return page(r, 'policy', '/policy/forms', out);
    },
  },
  {
    method: 'GET',
    path: /^\/policy\/v\/(\d{1,9})$/,
    access: 'session',
    handle(r) {
      const L = r.lang;
      const v = Number(r.api.params[0]);
      const row = r.ctx.db.prepare('SELECT document, signature, created_at, created_by FROM policies WHERE version = ?').get(v) as
        | { document: string; signature: string; created_at: string; created_by: string }
        | undefined;
      if (!row) throw new HttpError(404, 'not_found', tr(L, 'notFound'));
      const doc = JSON.parse(row.document) as PolicyDocument;
      const cur = r.ctx.currentPolicy().policy;
      const d = diffLines(pretty(bodyOf(cur)), pretty(bodyOf(doc)));
      const out = html`<p>${tr(L, 'version')} v${v} — ${fmtTime(row.created_at, L)}, ${row.created_by}</p>
<h2>${tr(L, 'compareWithCurrent')} (v${cur.version} → v${v})</h2>${diffView(d, L)}
${isAdmin(r) && v !== cur.version && changed(d) ? html`<h2>${tr(L, 'rollForward')}</h2>${confirmForm(r, bodyOf(doc), cur.version, v)}` : ''}
<h2>${tr(L, 'policy')} v${v}</h2><pre class="json">${pretty(doc)}</pre><p>signature: <code>${row.signature}</code></p><p><a href="/policy">${tr(L, 'policy')}</a></p>`;
      return page(r, 'policy', '/policy/forms', out);
    },
  },
  ...policyFormRoutes,
];
