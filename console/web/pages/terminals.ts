/** 端末: list, detail (heartbeat, OS, versions, recent events), enrollment tokens, revoke. */
import { describeEvent, eventTypeName } from '../../../protocol/event-text.js';
import { safeText } from '../../../protocol/text.js';
import { DEFAULT_REQUEST_SCOPE, latestBaselineRequest, parseScope, requestBaseline, type BaselineRequestRow } from '../../software/store.js';
import { agentRecord, createEnrollToken, listAgents, listEnrollTokens, revokeTerminal } from '../../backbone/store.js';
import type { OpenConsole } from '../../core/open-console.js';
import { HttpError } from '../../module.js';
import { html, qs } from '../html.js';
import { fmtTime, tr } from '../i18n.js';
import { collidingIds, eventPage, hostnameKey } from '../queries.js';
import { csrfField, field, isAdmin, page, redirect, refusedAsBadRequest, type WebReq, type WebRouteSpec } from '../web.js';
import { chainBadge, sevBadge, statusBadge } from './common.js';
import { siemLine } from '../../siem/status-line.js';

/** This page's own words for "この端末を基準にする" (Japanese first). */
const WORDS = {
  baselineTitle: ['基準ソフトウェア', 'Software baseline'],
  baselineHelp: [
    'この端末にインストールされているパッケージと実行ファイルを収集し、承認待ちの基準として取り込みます。端末は次回の同期(通常10秒以内)で収集を始めます。承認すると許可リストとしてポリシーに反映されます。',
    "Collects this terminal's installed packages and executables and imports them as a pending baseline. The terminal starts at its next sync (usually within 10 s). Approving it puts it in the policy as the allowlist.",
  ],
  baselineButton: ['この端末を基準にする', 'Use this terminal as the baseline'],
  baselineScope: ['収集範囲(1行に1フォルダ)', 'Folders to collect (one per line)'],
  requested: ['要求済み — 端末の次回の同期を待っています', 'Requested — waiting for the terminal to sync'],
  sent: ['端末が収集中です', 'The terminal is collecting'],
  uploaded: ['受信しました — 承認待ち', 'Received — pending approval'],
  failed: ['失敗しました', 'Failed'],
  expired: ['端末から応答がなく期限切れになりました', 'Expired without an answer from the terminal'],
  reviewBaseline: ['無許可ソフトウェアで確認・承認する', 'Review and approve under Unauthorized software'],
  lastRequest: ['最後の要求', 'Last request'],
} as const satisfies Record<string, readonly [string, string]>;
const w = (L: WebReq['lang'], k: keyof typeof WORDS): string => WORDS[k][L === 'ja' ? 0 : 1];

function baselineSection(r: WebReq, agentId: string, revoked: boolean) {
  const L = r.lang;
  const last: BaselineRequestRow | null = latestBaselineRequest(r.ctx, agentId);
  const open = last !== null && (last.state === 'requested' || last.state === 'sent');
  return html`<section id="baseline-request"><h2>${w(L, 'baselineTitle')}</h2><p class="help">${w(L, 'baselineHelp')}</p>
${
  last
    ? html`<p id="baseline-state" data-state="${last.state}">${w(L, 'lastRequest')}: ${fmtTime(last.requestedAt, L)} (${last.requestedBy}) — <strong>${w(L, last.state)}</strong>${
        last.error ? html` (${safeText(last.error, 200)})` : ''
      }${last.state === 'uploaded' ? html` <a id="review-baseline" href="/software#baselines">${w(L, 'reviewBaseline')} (${last.baselineId ?? ''})</a>` : ''}</p>`
    : ''
}
${
  isAdmin(r) && !revoked && !open
    ? html`<form method="post" action="/terminals/${agentId}/baseline" id="baseline-form">${csrfField(r)}
<details><summary>${w(L, 'baselineScope')}</summary><textarea name="scope" rows="5" cols="40">${DEFAULT_REQUEST_SCOPE.join('\n')}</textarea></details>
<button type="submit">${w(L, 'baselineButton')}</button></form>`
    : ''
}</section>`;
}

/** Shown next to a name another terminal also reports: the name alone does not say which terminal it is. */
function duplicateBadge(L: WebReq['lang'], id: string) {
  return html` <code class="id-prefix">${id.slice(0, 8)}</code> <span class="badge sev-warning dup-name" title="${tr(L, 'duplicateNameNote')}">${tr(L, 'duplicateName')}</span>`;
}

const AGENT_ID = '([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})';

function tokensSection(r: WebReq) {
  const L = r.lang;
  const rows = listEnrollTokens(r.ctx);
  return html`<section><h2>${tr(L, 'enrollTokens')}</h2>
${rows.length ? html`<table><thead><tr><th>ID</th><th>${tr(L, 'createdAt')}</th><th>${tr(L, 'expires')}</th><th class="num">${tr(L, 'usesLeft')}</th><th>${tr(L, 'createdBy')}</th></tr></thead><tbody>${rows.map(
    (t) => html`<tr><td><code>${t.tokenHash.slice(0, 12)}</code></td><td>${fmtTime(t.createdAt, L)}</td><td>${fmtTime(t.expiresAt, L)}</td><td class="num">${t.usesLeft}</td><td>${t.createdBy}</td></tr>`,
  )}</tbody></table>` : html`<p>${tr(L, 'none')}</p>`}
${isAdmin(r) ? html`<form method="post" action="/terminals/tokens" class="row">${csrfField(r)}
<label>${tr(L, 'ttlHours')}<input name="hours" type="number" min="1" max="720" value="24"></label>
<label>${tr(L, 'uses')}<input name="uses" type="number" min="1" max="10000" value="1"></label>
<button type="submit">${tr(L, 'createToken')}</button></form>` : ''}</section>`;
}

export const terminalRoutes: WebRouteSpec[] = [
  {
    method: 'GET',
    path: '/terminals',
    access: 'session',
    handle(r) {
      const L = r.lang;
      const status = r.api.query.get('status') ?? '';
      const all = listAgents(r.ctx);
      const dup = collidingIds(all); // over all terminals, whatever the filter shows
      const list = /^(online|offline|silent|revoked)$/.test(status) ? all.filter((a) => a.status === status) : all;
      const current = r.ctx.currentPolicy().policy.version;
      const body = html`${siemLine(r.ctx, L)}<p class="filters">${['', 'online', 'offline', 'silent', 'revoked'].map(
        (s) => html`<a href="/terminals${qs({ status: s })}" class="${s === status ? 'active' : ''}">${s ? tr(L, s as 'online') : tr(L, 'all')}</a> `,
      )}</p>
<table id="terminals"><thead><tr><th>${tr(L, 'hostname')}</th><th>${tr(L, 'status')}</th><th>${tr(L, 'lastSeen')}</th><th>${tr(L, 'os')}</th><th>${tr(L, 'agentVersion')}</th><th>${tr(L, 'policyVersion')}</th><th class="num">${tr(L, 'outboxDepth')}</th></tr></thead><tbody>
${list.map(
  (a) => html`<tr${dup.has(a.id) ? html` class="dup-name"` : ''}><td><a href="/terminals/${a.id}">${safeText(a.hostname, 64)}</a>${dup.has(a.id) ? duplicateBadge(L, a.id) : ''}${a.monitorOnly ? html` <span class="badge">${tr(L, 'monitorOnly')}</span>` : ''}</td><td>${statusBadge(L, a.status)}</td><td>${fmtTime(a.lastSeen, L)}</td><td>${safeText(a.os, 60)}</td><td>${safeText(a.agentVersion, 20)}</td><td class="${a.policyVersion === current ? '' : 'stale'}">v${a.policyVersion}</td><td class="num">${a.outboxDepth}</td></tr>`,
)}</tbody></table>
${tokensSection(r)}`;
      return page(r, 'terminals', '/terminals', body);
    },
  },
  {
    method: 'GET',
    path: new RegExp(`^/terminals/${AGENT_ID}$`),
    access: 'session',
    handle(r) {
      const L = r.lang;
      const id = r.api.params[0]!;
      const all = listAgents(r.ctx);
      const a = all.find((x) => x.id === id);
      if (!a) throw new HttpError(404, 'not_found', tr(L, 'notFound'));
      const sameName = all.filter((x) => x.id !== id && hostnameKey(x.hostname) === hostnameKey(a.hostname));
      const extra = agentRecord(r.ctx, id);
      if (!extra) throw new HttpError(404, 'not_found', tr(L, 'notFound'));
      const recent = eventPage(r.ctx.db, { terminal: id }, 20).events;
      const body = html`<dl class="detail">
<dt>${tr(L, 'hostname')}</dt><dd>${safeText(a.hostname, 255)}${sameName.length ? duplicateBadge(L, a.id) : ''}</dd>
${sameName.length ? html`<dt>${tr(L, 'sameNameTerminals')}</dt><dd id="same-name">${sameName.map((x) => html`<a href="/terminals/${x.id}">${safeText(x.hostname, 64)} (${x.id.slice(0, 8)})</a> ${statusBadge(L, x.status)} `)}</dd>` : ''}
<dt>${tr(L, 'terminalId')}</dt><dd><code>${a.id}</code></dd>
<dt>${tr(L, 'status')}</dt><dd>${statusBadge(L, a.status)}${a.monitorOnly ? html` <span class="badge">${tr(L, 'monitorOnly')}</span>` : ''}</dd>
<dt>${tr(L, 'lastSeen')}</dt><dd>${fmtTime(a.lastSeen, L)}</dd>
<dt>${tr(L, 'os')}</dt><dd>${safeText(a.os, 200)}</dd>
<dt>${tr(L, 'agentVersion')}</dt><dd>${safeText(a.agentVersion, 50)}</dd>
<dt>${tr(L, 'policyVersion')}</dt><dd>v${a.policyVersion}</dd>
<dt>${tr(L, 'outboxDepth')}</dt><dd>${a.outboxDepth}</dd>
<dt>${tr(L, 'sequence')}</dt><dd>#${extra.lastSeq}</dd>
<dt>${tr(L, 'enrolledAt')}</dt><dd>${fmtTime(extra.enrolledAt, L)}</dd>
${extra.revokedAt ? html`<dt>${tr(L, 'revoked')}</dt><dd>${fmtTime(extra.revokedAt, L)}</dd>` : ''}
</dl>
${baselineSection(r, a.id, a.status === 'revoked')}
${isAdmin(r) && a.status !== 'revoked' ? html`<form method="post" action="/terminals/${a.id}/revoke" class="danger" data-confirm="${tr(L, 'revokeConfirm')}">${csrfField(r)}<button type="submit" class="danger">${tr(L, 'revoke')}</button></form>` : ''}
<h2>${tr(L, 'recentEvents')}</h2>
<table class="events"><thead><tr><th>${tr(L, 'time')}</th><th>${tr(L, 'type')}</th><th>${tr(L, 'severity')}</th><th>${tr(L, 'user')}</th><th>${tr(L, 'details')}</th><th>${tr(L, 'chain')}</th></tr></thead><tbody>
${recent.map((e) => html`<tr><td class="nowrap"><a href="/events/${e.rid}">${fmtTime(e.ts, L)}</a></td><td title="${e.type}">${eventTypeName(e.type, L)}</td><td>${sevBadge(e.severity)}</td><td>${safeText(e.user ?? '', 64)}</td><td class="data">${describeEvent(e, L)}</td><td>${chainBadge(L, e.chain)}</td></tr>`)}
</tbody></table><p><a href="/events${qs({ terminal: a.id })}">${tr(L, 'events')} →</a></p>`;
      return page(r, 'terminals', '/terminals', body);
    },
  },
  {
    method: 'POST',
    path: new RegExp(`^/terminals/${AGENT_ID}/revoke$`),
    access: 'admin',
    handle(r) {
      const id = r.api.params[0]!;
      if (!revokeTerminal(r.ctx, id, r.session!.username)) throw new HttpError(404, 'not_found', tr(r.lang, 'notFound'));
      return redirect(`/terminals/${id}`);
    },
  },
  {
    method: 'POST',
    path: new RegExp(`^/terminals/${AGENT_ID}/baseline$`),
    access: 'admin',
    handle(r) {
      const id = r.api.params[0]!;
      const parsed = parseScope(field(r, 'scope', 40_000));
      if ('error' in parsed) throw new HttpError(400, 'invalid_request', parsed.error);
      refusedAsBadRequest(() => void requestBaseline(r.ctx, id, parsed.scope, r.session!.username));
      return redirect(`/terminals/${id}#baseline-request`);
    },
  },
  {
    method: 'POST',
    path: '/terminals/tokens',
    access: 'admin',
    handle(r) {
      const L = r.lang;
      const hours = Number(field(r, 'hours', 5));
      const uses = Number(field(r, 'uses', 6));
      if (!Number.isSafeInteger(hours) || hours < 1 || hours > 720) throw new HttpError(400, 'invalid_request', `${tr(L, 'ttlHours')}: 1–720`);
      if (!Number.isSafeInteger(uses) || uses < 1 || uses > 10_000) throw new HttpError(400, 'invalid_request', `${tr(L, 'uses')}: 1–10000`);
      const t = createEnrollToken(r.ctx, hours * 3_600_000, uses, r.session!.username);
      const fp = (r.ctx as OpenConsole).caFingerprint;
      const host = String(r.api.headers.host ?? '<console>:8443');
      const body = html`<p class="note">${tr(L, 'tokenShownOnce')}</p>
<pre class="command" id="enroll-command">sekimori-agent enroll --console https://${host} --token ${t.token} --ca-fingerprint ${fp}</pre>
<p>${tr(L, 'expires')}: ${fmtTime(t.expiresAt, L)} / ${tr(L, 'uses')}: ${uses}</p><p><a href="/terminals">${tr(L, 'backToList')}</a></p>`;
      return page(r, 'enrollTokens', '/terminals', body);
    },
  },
];
