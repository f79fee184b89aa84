/**
 * 端末の対策状況 (issue 16): the terminals × controls matrix, each cell the verdict under the policy
 * in force with its reason and evidence on hover (title) and in full on the terminal's detail.
 * Evidence, host names and reasons come from terminals (attacker-controlled): html`` escapes them.
 * Data and queries belong to console/posture/store.ts.
 */
import { POSTURE_CONTROLS, type PostureControl } from '../../../protocol/posture.js';
import { safeText } from '../../../protocol/text.js';
import { postureMatrix, type PostureRow } from '../../posture/store.js';
import { html, qs } from '../html.js';
import { fmtTime, tr, type Lang, type MsgKey } from '../i18n.js';
import { page, type WebRouteSpec } from '../web.js';

const controlKey = (c: PostureControl): MsgKey => `pc_${c}` as MsgKey;
const AGENT_RE = /^[0-9a-f-]{36}$/;

function cell(row: PostureRow, c: PostureControl) {
  const v = row.verdicts.find((x) => x.control === c);
  if (!v) return html`<td class="posture-cell none" data-control="${c}">-</td>`;
  const report = row.doc?.controls.find((x) => x.control === c);
  const title = [safeText(v.why, 300), ...(report?.evidence ?? []).slice(0, 12).map((e) => safeText(e, 300))].join('\n');
  return html`<td class="posture-cell ${v.ok ? 'ok' : 'fail'}" data-control="${c}" data-ok="${v.ok ? '1' : '0'}" title="${title}"><a href="/posture${qs({ agent: row.agentId })}#${c}">${v.ok ? '✓' : '✗'}</a>${v.ok ? '' : html` <span class="why">${safeText(v.why, 80)}</span>`}</td>`;
}

function state(L: Lang, row: PostureRow) {
  if (row.compliant === null) return html`<span class="badge">${tr(L, 'postureNoReport')}</span>`;
  return row.compliant ? html`<span class="badge ok">${tr(L, 'postureCompliant')}</span>` : html`<span class="badge sev-critical">${tr(L, 'postureNoncompliant')}</span>`;
}

function detail(L: Lang, row: PostureRow) {
  const doc = row.doc;
  if (!doc) return html`<p>${tr(L, 'postureNoReport')}</p>`;
  return html`<h2 id="posture-detail-title">${safeText(row.hostname, 64)} — ${state(L, row)}</h2>
<p>${tr(L, 'postureCollected')}: ${fmtTime(doc.collectedAt, L)} · ${safeText(doc.platform, 32)} · agent ${safeText(doc.agentVersion, 64)} · policy v${doc.policyVersion} · clock ${doc.clockOffsetMs} ms · outbox ${doc.outboxDepth}</p>
<table id="posture-detail"><thead><tr><th>${tr(L, 'postureControl')}</th><th>${tr(L, 'postureVerdict')}</th><th>${tr(L, 'postureEvidence')}</th></tr></thead><tbody>
${row.verdicts.map((v) => {
  const rep = doc.controls.find((x) => x.control === v.control);
  return html`<tr id="${v.control}" class="${v.ok ? 'ok' : 'fail'}"><td>${tr(L, controlKey(v.control))}</td><td>${v.ok ? '✓' : '✗'} ${safeText(v.why, 500)}</td><td class="data"><ul>${(rep?.evidence ?? []).map((e) => html`<li>${safeText(e, 600)}</li>`)}</ul></td></tr>`;
})}</tbody></table>`;
}

export const postureRoutes: WebRouteSpec[] = [
  {
    method: 'GET',
    path: '/posture',
    access: 'session',
    handle(r) {
      const L = r.lang;
      const rows = postureMatrix(r.ctx);
      const agent = (r.api.query.get('agent') ?? '').slice(0, 64);
      const one = AGENT_RE.test(agent) ? rows.find((x) => x.agentId === agent) : undefined;
      const reported = rows.filter((x) => x.compliant !== null);
      const body = html`<p>${tr(L, 'postureIntro')}</p>
<p id="posture-coverage">${tr(L, 'postureCoverage')}: ${reported.filter((x) => x.compliant).length} / ${rows.length}</p>
<table id="posture-matrix"><thead><tr><th>${tr(L, 'hostname')}</th><th>${tr(L, 'postureVerdict')}</th>${POSTURE_CONTROLS.map((c) => html`<th>${tr(L, controlKey(c))}</th>`)}<th>${tr(L, 'postureCollected')}</th></tr></thead><tbody>
${rows.map(
  (row) => html`<tr data-agent="${row.agentId}"><td><a href="/posture${qs({ agent: row.agentId })}">${safeText(row.hostname, 64)}</a> <span class="muted">${row.agentId.slice(0, 8)}</span></td><td>${state(L, row)}</td>${POSTURE_CONTROLS.map((c) => cell(row, c))}<td class="nowrap">${row.doc ? fmtTime(row.doc.collectedAt, L) : '-'}</td></tr>`,
)}</tbody></table>
${one ? detail(L, one) : ''}`;
      return page(r, 'posture', '/posture', body);
    },
  },
];
