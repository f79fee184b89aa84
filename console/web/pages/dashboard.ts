/** ダッシュボード: terminal states, blocked actions today and over 30 days, top terminals/users, policy versions. */
import { barChart, hbarChart } from '../charts.js';
import { html } from '../html.js';
import { tr } from '../i18n.js';
import { dashboard } from '../queries.js';
import { page, type WebRouteSpec } from '../web.js';
import { qs } from '../html.js';
import { BLOCKED_TYPES } from '../queries.js';

export const dashboardRoutes: WebRouteSpec[] = [
  {
    method: 'GET',
    path: /^\/(?:dashboard)?$/,
    access: 'session',
    handle(r) {
      const L = r.lang;
      const d = dashboard(r.ctx.db);
      const total30 = d.blockedByDay.reduce((a, b) => a + b.n, 0);
      const body = html`
<section class="cards">
  <a class="card ok" href="/terminals?status=online"><span class="n">${d.terminals.online}</span>${tr(L, 'online')}</a>
  <a class="card warn" href="/terminals?status=offline"><span class="n">${d.terminals.offline}</span>${tr(L, 'offline')}</a>
  <a class="card bad" href="/terminals?status=silent"><span class="n">${d.terminals.silent}</span>${tr(L, 'silent')}</a>
  <a class="card" href="/events${qs({ type: 'usb.blocked' })}"><span class="n" id="blocked-today">${d.blockedToday}</span>${tr(L, 'blockedToday')}</a>
  <div class="card"><span class="n">${total30}</span>${tr(L, 'blocked30')}</div>
  <a class="card" href="/policy"><span class="n">v${d.currentPolicy}</span>${tr(L, 'currentPolicy')}</a>
</section>
<section><h2>${tr(L, 'blocked30')}</h2>${barChart(
        d.blockedByDay.map((x) => ({ label: x.day.slice(5), n: x.n })),
        { title: tr(L, 'blocked30'), labelEvery: 3 },
      )}<p class="note">${BLOCKED_TYPES.join(', ')}${d.rollupLag > 0 ? html` — ${tr(L, 'rollupLag')}: ${d.rollupLag}` : ''}${
        d.rollupSkipped > 0 ? html` — <span id="rollup-skipped">${tr(L, 'rollupSkipped')}: ${d.rollupSkipped}</span>` : ''
      }</p></section>
<div class="cols">
<section><h2>${tr(L, 'topTerminals')}</h2>${
        d.topTerminals.length
          ? html`${hbarChart(d.topTerminals.map((t) => ({ label: t.hostname, n: t.n })), { title: tr(L, 'topTerminals') })}
<table><thead><tr><th>${tr(L, 'terminal')}</th><th class="num">${tr(L, 'count')}</th></tr></thead><tbody>${d.topTerminals.map(
              (t) => html`<tr><td><a href="/terminals/${encodeURIComponent(t.terminalId)}">${t.hostname}</a></td><td class="num">${t.n}</td></tr>`,
            )}</tbody></table>`
          : html`<p>${tr(L, 'none')}</p>`
      }</section>
<section><h2>${tr(L, 'topUsers')}</h2>${
        d.topUsers.length
          ? html`${hbarChart(d.topUsers.map((u) => ({ label: u.user, n: u.n })), { title: tr(L, 'topUsers') })}
<table><thead><tr><th>${tr(L, 'user')}</th><th class="num">${tr(L, 'count')}</th></tr></thead><tbody>${d.topUsers.map(
              (u) => html`<tr><td><a href="/events${qs({ user: u.user })}">${u.user}</a></td><td class="num">${u.n}</td></tr>`,
            )}</tbody></table>`
          : html`<p>${tr(L, 'none')}</p>`
      }</section>
</div>
<section><h2>${tr(L, 'policyVersions')}</h2>
<table><thead><tr><th>${tr(L, 'policyVersion')}</th><th class="num">${tr(L, 'terminals')}</th></tr></thead><tbody>${d.policyVersions.map(
        (p) => html`<tr class="${p.version === d.currentPolicy ? '' : 'stale'}"><td>v${p.version}${p.version === d.currentPolicy ? html` (${tr(L, 'currentPolicy')})` : ''}</td><td class="num">${p.n}</td></tr>`,
      )}</tbody></table></section>`;
      return page(r, 'dashboard', '/', body);
    },
  },
];
