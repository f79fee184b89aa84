/** 自己点検レポート: a printable self-inspection report for a chosen period, with SVG charts. */
import { safeText } from '../../../protocol/text.js';
import { listAgents } from '../../backbone/store.js';
import { HttpError } from '../../module.js';
import { barChart } from '../charts.js';
import { html, type Html } from '../html.js';
import { fmtTime, tr, type Lang } from '../i18n.js';
import { collidingIds, countTypes, dayString, eventPage, perDay, rollupCatchUp, rollupLag, terminalName, terminalNames, topTerminals, topUsers } from '../queries.js';
import { page, type WebReq, type WebRouteSpec } from '../web.js';
import { dayEndIso, dayStartIso } from './events.js';
import { summary, terminalLabel } from './common.js';

const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;

export function reportPeriod(q: URLSearchParams, now = new Date()): { from: string; to: string } {
  const to = q.get('to') || dayString(now);
  const from = q.get('from') || dayString(new Date(now.getTime() - 29 * 86_400_000));
  if (!DAY_RE.test(from) || !DAY_RE.test(to) || Number.isNaN(Date.parse(from)) || Number.isNaN(Date.parse(to))) throw new HttpError(400, 'invalid_request', 'from/to: YYYY-MM-DD');
  if (from > to) throw new HttpError(400, 'invalid_request', 'from > to');
  if (Date.parse(to) - Date.parse(from) > 366 * 86_400_000) throw new HttpError(400, 'invalid_request', 'period: at most 366 days');
  return { from, to };
}

function table(lang: Lang, head: string[], rows: Html[]): Html {
  return rows.length ? html`<table><thead><tr>${head.map((h) => html`<th>${h}</th>`)}</tr></thead><tbody>${rows}</tbody></table>` : html`<p>${tr(lang, 'none')}</p>`;
}

function section(r: WebReq, id: string, title: string, types: readonly string[], from: string, to: string, extra: Html = html``): Html {
  const L = r.lang;
  const db = r.ctx.db;
  const days = perDay(db, types, from, to);
  const total = countTypes(db, types, from, to);
  const byType = types.map((t) => ({ t, n: countTypes(db, [t], from, to) }));
  const terms = topTerminals(db, types, from, to, 10);
  const users = topUsers(db, types, from, to, 10);
  return html`<section class="report-section" id="${id}"><h2>${title}</h2>
<p class="total">${tr(L, 'total')}: <strong>${total}</strong> (${byType.map((x, i) => html`${i ? ', ' : ''}${x.t}: ${x.n}`)})</p>
${barChart(days.map((d) => ({ label: d.day.slice(5), n: d.n })), { title: `${title} — ${tr(L, 'perDay')}`, height: 160 })}
<div class="cols">${table(L, [tr(L, 'terminal'), tr(L, 'count')], terms.map((t) => html`<tr><td>${t.hostname}</td><td class="num">${t.n}</td></tr>`))}
${table(L, [tr(L, 'user'), tr(L, 'count')], users.map((u) => html`<tr><td>${safeText(u.user, 64)}</td><td class="num">${u.n}</td></tr>`))}</div>${extra}</section>`;
}

export const reportRoutes: WebRouteSpec[] = [
  {
    method: 'GET',
    path: '/report',
    access: 'session',
    handle(r) {
      const L = r.lang;
      const { from, to } = reportPeriod(r.api.query);
      const db = r.ctx.db;
      if (rollupLag(db) <= 200_000) rollupCatchUp(db, 200_000);
      const since = dayStartIso(from);
      const until = dayEndIso(to);
      const names = terminalNames(db);
      const agents = listAgents(r.ctx);
      const dup = collidingIds(agents);
      const silentNow = agents.filter((a) => a.status === 'silent' || a.status === 'offline');
      const silentAlerts = eventPage(db, { type: 'agent.silent', since, until }, 100).events;
      const policies = db.prepare('SELECT version, created_at, created_by FROM policies WHERE created_at >= ? AND created_at < ? ORDER BY version').all(since, until) as {
        version: number;
        created_at: string;
        created_by: string;
      }[];
      r.ctx.recordEvent({ type: 'admin.report_generated', user: r.session!.username, data: { from, to } });
      const body = html`<form method="get" action="/report" class="filters no-print"><label>${tr(L, 'since')}<input type="date" name="from" value="${from}"></label>
<label>${tr(L, 'until')}<input type="date" name="to" value="${to}"></label><button type="submit">${tr(L, 'show')}</button> <button type="button" id="print-button">${tr(L, 'print')}</button></form>
<div class="report-head"><p class="org">${r.ctx.organisation()}</p><p>${tr(L, 'reportIntro')}</p>
<p>${tr(L, 'period')}: <strong>${from} 〜 ${to}</strong> (JST) / ${tr(L, 'generatedAt')}: ${fmtTime(new Date().toISOString(), L)} / ${tr(L, 'generatedBy')}: ${r.session!.username}</p></div>
${section(r, 'r-usb', tr(L, 'blockedExports'), ['usb.blocked'], from, to)}
${section(r, 'r-mfa', tr(L, 'mfaFailures'), ['mfa.failure', 'mfa.locked', 'mfa.replay'], from, to)}
${section(r, 'r-software', tr(L, 'unauthorizedSoftware'), ['software.unauthorized_process', 'software.unauthorized_file', 'software.killed', 'software.quarantined'], from, to)}
<section class="report-section" id="r-silent"><h2>${tr(L, 'silentTerminals')}</h2>
<h3>${tr(L, 'currentlySilent')}</h3>${table(L, [tr(L, 'hostname'), tr(L, 'status'), tr(L, 'lastSeen')], silentNow.map((a) => html`<tr><td>${terminalName(a.hostname, a.id, dup.has(a.id))}</td><td>${tr(L, a.status === 'silent' ? 'silent' : 'offline')}</td><td>${fmtTime(a.lastSeen, L)}</td></tr>`))}
<h3>${tr(L, 'silentAlerts')}</h3>${table(L, [tr(L, 'time'), tr(L, 'terminal'), tr(L, 'details')], silentAlerts.map((e) => html`<tr><td>${fmtTime(e.ts, L)}</td><td>${terminalLabel(names, e.terminalId)}</td><td>${summary(e)}</td></tr>`))}</section>
<section class="report-section" id="r-policy"><h2>${tr(L, 'policyChanges')}</h2>${table(L, [tr(L, 'version'), tr(L, 'createdAt'), tr(L, 'createdBy')], policies.map((p) => html`<tr><td>v${p.version}</td><td>${fmtTime(p.created_at, L)}</td><td>${p.created_by}</td></tr>`))}</section>
<section class="signoff"><p>${tr(L, 'signature')}: ____________________　　${tr(L, 'time')}: ____________</p></section>`;
      return page(r, 'reportTitle', '/report', body, 200, { printable: true });
    },
  },
];
