/**
 * 自己点検レポート: the checklist of the マイナンバー利用事務系 segment item by item (verdict, coverage,
 * the non-compliant terminals by name, links into the operation log: console/report/items.ts), the
 * exceptions with applicant/approver/files written, policy versions and hash chains, the signed
 * evidence export, and below them the charts of the period. Printable (print CSS hides the nav).
 */
import { describeEvent } from '../../../protocol/event-text.js';
import { safeText } from '../../../protocol/text.js';
import { exportEvidence } from '../../report/export.js';
import { evaluate, eventsLink, type ItemResult, type ReportFacts } from '../../report/items.js';
import { gatherFacts, policyPublicKey } from '../../report/store.js';
import { itemQuestion, itemTitle, label, reasonText, word } from '../../report/text.js';
import { keyFingerprint } from '../../report/evidence.js';
import { listAgents } from '../../backbone/store.js';
import { HttpError } from '../../module.js';
import { barChart } from '../charts.js';
import { html, type Html } from '../html.js';
import { fmtTime, tr, type Lang } from '../i18n.js';
import { collidingIds, countTypes, dayString, eventPage, perDay, rollupCatchUp, rollupLag, terminalName, terminalNames, topTerminals, topUsers } from '../queries.js';
import { page, type WebReq, type WebRouteSpec } from '../web.js';
import { dayEndIso, dayStartIso } from './events.js';
import { terminalLabel } from './common.js';

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

function verdictBadge(L: Lang, v: ItemResult['verdict']): Html {
  return html`<span class="verdict verdict-${v}" data-verdict="${v}">${word(L, v)}</span>`;
}

/** The checklist: one row per item, then its non-compliant terminals with reasons and links. */
function checklist(L: Lang, f: ReportFacts, items: ItemResult[]): Html {
  const rows = items.map(
    (i) => html`<tr class="item" data-item="${i.id}"><th scope="row"><a href="#item-${i.id}">${itemTitle(L, i.id)}</a></th><td>${verdictBadge(L, i.verdict)}</td>
<td class="num coverage" data-covered="${i.covered}" data-total="${i.total}">${i.covered} / ${i.total}</td><td>${i.offenders.length ? i.offenders.slice(0, 5).map((o, k) => html`${k ? ', ' : ''}${safeText(o.name, 64)}`) : '-'}${i.offenders.length > 5 ? ` … (+${i.offenders.length - 5})` : ''}</td></tr>`,
  );
  const details = items.map(
    (i) => html`<section class="report-section checklist-item" id="item-${i.id}" data-item="${i.id}"><h3>${itemTitle(L, i.id)} ${verdictBadge(L, i.verdict)} <span class="coverage">${word(L, 'coverage')}: ${i.covered} / ${i.total}</span></h3>
<p class="question">${itemQuestion(L, i.id)}</p>
${i.fleetReasons.length ? html`<p class="fleet-reasons">${word(L, 'fleetReasons')}: ${i.fleetReasons.map((r, k) => html`${k ? '、' : ''}${reasonText(L, r)}`)}</p>` : ''}
${
  i.offenders.length
    ? html`<table class="offenders"><thead><tr><th>${word(L, 'terminal')}</th><th>${word(L, 'reasons')}</th><th class="no-print">${word(L, 'evidenceLinks')}</th></tr></thead><tbody>${i.offenders.map(
        (o) => html`<tr data-terminal="${o.terminalId}"><td class="terminal-name">${safeText(o.name, 64)} <code>${o.terminalId.slice(0, 8)}</code></td><td>${o.reasons
          .filter((r) => !i.fleetReasons.includes(r))
          .map((r, k) => html`${k ? '、' : ''}${reasonText(L, r)}`)}</td><td class="no-print"><a href="${eventsLink(f, { terminal: o.terminalId })}">${word(L, 'terminalEvents')}</a></td></tr>`,
      )}</tbody></table>`
    : ''
}
<p class="links">${word(L, 'evidenceLinks')}: ${i.links.map((l, k) => html`${k ? ' · ' : ''}<a href="${l.href}">${label(L, l.label)}</a>`)}</p></section>`,
  );
  return html`<section class="report-section" id="r-checklist"><h2>${word(L, 'checklist')}</h2>
<p class="note">${word(L, f.posture === null ? 'noPostureSource' : 'postureBasis')}</p>
<table class="checklist"><thead><tr><th>${word(L, 'item')}</th><th>${word(L, 'verdict')}</th><th>${word(L, 'coverage')}</th><th>${word(L, 'offenders')}</th></tr></thead><tbody>${rows}</tbody></table></section>
${details}`;
}

function exceptionSection(L: Lang, f: ReportFacts, names: Map<string, string>): Html {
  const rows = f.exceptions.map(
    (e) => html`<tr data-exception="${e.id}"><td><code>${e.id}</code></td><td>${terminalLabel(names, e.agentId)}</td><td>${safeText(e.device, 300)} (${e.access})</td>
<td>${fmtTime(e.grantedAt, L)} 〜 ${fmtTime(e.revokedAt && e.revokedAt < e.expiresAt ? e.revokedAt : e.expiresAt, L)}</td><td>${e.applicant === null ? word(L, 'noRequest') : safeText(e.applicant, 64)}${e.staffUser ? html` / ${safeText(e.staffUser, 64)}` : ''}</td>
<td>${safeText(e.approver, 64)}</td><td>${safeText(e.reason, 200)}</td><td>${e.files.length ? html`<ul class="files">${e.files.slice(0, 50).map((w) => html`<li>${safeText(w.path, 300)} (${w.size} B${w.sha256 ? html`, <code>${w.sha256.slice(0, 16)}</code>` : ''}${w.user ? html`, ${safeText(w.user, 64)}` : ''})</li>`)}${e.files.length > 50 ? html`<li>… +${e.files.length - 50}</li>` : ''}</ul>` : '-'}</td></tr>`,
  );
  return html`<section class="report-section" id="r-exceptions"><h2>${word(L, 'exceptionList')}</h2>${table(L, ['ID', word(L, 'terminal'), word(L, 'device'), word(L, 'periodCol'), word(L, 'applicant') + ' / ' + word(L, 'staffUser'), word(L, 'approver'), word(L, 'reason'), word(L, 'filesWritten')], rows)}</section>`;
}

function integritySection(L: Lang, f: ReportFacts, names: Map<string, string>): Html {
  const policies = f.policies.map(
    (p) => html`<tr data-version="${p.version}"><td>v${p.version}</td><td>${fmtTime(p.createdAt, L)}</td><td>${safeText(p.createdBy, 64)}</td><td class="${p.signatureOk ? '' : 'bad'}">${word(L, p.signatureOk ? 'signatureOk' : 'signatureBad')}</td></tr>`,
  );
  const chains = f.terminals.map((t) => {
    const c = f.chain.get(t.id);
    return html`<tr data-terminal="${t.id}"><td>${terminalLabel(names, t.id)}</td><td class="num">${c?.events ?? 0}</td><td class="num">${c?.gaps ?? 0} / ${c?.broken ?? 0} / ${c?.tampered ?? 0}</td><td><code>${c?.headSeq ?? 0}: ${(c?.headHash ?? '-').slice(0, 16)}</code></td></tr>`;
  });
  return html`<section class="report-section" id="r-integrity"><h2>${word(L, 'policyVersions')}</h2>${table(L, [tr(L, 'version'), tr(L, 'createdAt'), tr(L, 'createdBy'), word(L, 'signature')], policies)}
<h2>${word(L, 'chainHeads')}</h2>${table(L, [word(L, 'terminal'), word(L, 'events'), `${tr(L, 'chainGap')} / ${tr(L, 'chainBroken')} / ${tr(L, 'chainTampered')}`, word(L, 'head')], chains)}</section>`;
}

export const reportRoutes: WebRouteSpec[] = [
  {
    method: 'GET',
    path: '/report/evidence',
    access: 'session',
    handle(r) {
      const { from, to } = reportPeriod(r.api.query);
      let out: ReturnType<typeof exportEvidence>;
      try {
        out = exportEvidence(r.ctx, from, to, r.session!.username);
      } catch (e) {
        throw new HttpError(400, 'invalid_request', (e as Error).message);
      }
      return {
        status: 200,
        headers: { 'content-type': 'application/x-tar', 'content-disposition': `attachment; filename="sekimori-evidence-${from}_${to}.tar"`, 'cache-control': 'no-store' },
        body: out.archive,
      };
    },
  },
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
      const facts = gatherFacts(r.ctx, from, to, new Date());
      const items = evaluate(facts);
      const fingerprint = keyFingerprint(policyPublicKey(r.ctx));
      r.ctx.recordEvent({ type: 'admin.report_generated', user: r.session!.username, data: { from, to } });
      const body = html`<form method="get" action="/report" class="filters no-print"><label>${tr(L, 'since')}<input type="date" name="from" value="${from}"></label>
<label>${tr(L, 'until')}<input type="date" name="to" value="${to}"></label><button type="submit">${tr(L, 'show')}</button> <button type="button" id="print-button">${tr(L, 'print')}</button></form>
<div class="report-head"><p class="org">${r.ctx.organisation()}</p><p>${tr(L, 'reportIntro')}</p>
<p>${tr(L, 'period')}: <strong>${from} 〜 ${to}</strong> (JST) / ${tr(L, 'generatedAt')}: ${fmtTime(new Date().toISOString(), L)} / ${tr(L, 'generatedBy')}: ${r.session!.username}</p></div>
${checklist(L, facts, items)}
${exceptionSection(L, facts, names)}
${integritySection(L, facts, names)}
<section class="report-section no-print" id="r-evidence"><h2>${word(L, 'evidenceExport')}</h2><p><a class="button" id="evidence-link" href="/report/evidence?from=${from}&amp;to=${to}" download>${word(L, 'evidenceExport')}</a></p>
<p>${word(L, 'evidenceHelp')}</p><p>${word(L, 'signature')}: Ed25519 <code id="evidence-fingerprint">${fingerprint}</code></p></section>
${section(r, 'r-usb', tr(L, 'blockedExports'), ['usb.blocked'], from, to)}
${section(r, 'r-mfa', tr(L, 'mfaFailures'), ['mfa.failure', 'mfa.locked', 'mfa.replay'], from, to)}
${section(r, 'r-software', tr(L, 'unauthorizedSoftware'), ['software.unauthorized_process', 'software.unauthorized_file', 'software.killed', 'software.quarantined'], from, to)}
<section class="report-section" id="r-silent"><h2>${tr(L, 'silentTerminals')}</h2>
<h3>${tr(L, 'currentlySilent')}</h3>${table(L, [tr(L, 'hostname'), tr(L, 'status'), tr(L, 'lastSeen')], silentNow.map((a) => html`<tr><td>${terminalName(a.hostname, a.id, dup.has(a.id))}</td><td>${tr(L, a.status === 'silent' ? 'silent' : 'offline')}</td><td>${fmtTime(a.lastSeen, L)}</td></tr>`))}
<h3>${tr(L, 'silentAlerts')}</h3>${table(L, [tr(L, 'time'), tr(L, 'terminal'), tr(L, 'details')], silentAlerts.map((e) => html`<tr><td>${fmtTime(e.ts, L)}</td><td>${terminalLabel(names, e.terminalId)}</td><td>${describeEvent(e, L)}</td></tr>`))}</section>
<section class="report-section" id="r-policy"><h2>${tr(L, 'policyChanges')}</h2>${table(L, [tr(L, 'version'), tr(L, 'createdAt'), tr(L, 'createdBy')], policies.map((p) => html`<tr><td>v${p.version}</td><td>${fmtTime(p.created_at, L)}</td><td>${p.created_by}</td></tr>`))}</section>
<section class="signoff"><p>${tr(L, 'signature')}: ____________________　　${tr(L, 'time')}: ____________</p></section>`;
      return page(r, 'reportTitle', '/report', body, 200, { printable: true });
    },
  },
];
