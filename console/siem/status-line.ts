/**
 * The one line the terminals page shows about SIEM forwarding (issue 17): state, target, backlog,
 * last error. Every value goes through the html`` template (escaped); the error text is bounded.
 */
import { safeText } from '../../protocol/text.js';
import type { ConsoleContext } from '../module.js';
import { html, type Html } from '../web/html.js';
import { siemStatus, type SiemStatus } from './cli.js';

type Lang = 'ja' | 'en';
const J = (L: Lang, ja: string, en: string) => (L === 'ja' ? ja : en);

const STATE: Record<string, [string, string]> = {
  forwarding: ['転送中', 'forwarding'],
  connecting: ['接続中', 'connecting'],
  down: ['停止中(再接続を試行中)', 'stopped (reconnecting)'],
  idle: ['開始待ち', 'starting'],
  off: ['未設定', 'off'],
};

export function renderSiemLine(s: SiemStatus, L: Lang): Html {
  if (!s.enabled) return html`<p class="siem-status" id="siem-status">${J(L, 'SIEM転送: 未設定', 'SIEM forwarding: off')}</p>`;
  const st = STATE[s.state] ?? [s.state, s.state];
  const bad = s.state === 'down';
  return html`<p class="siem-status${bad ? ' stale' : ''}" id="siem-status">${J(L, 'SIEM転送', 'SIEM forwarding')}: ${J(L, st[0], st[1])} — ${safeText(s.target ?? '-', 120)} · ${J(L, '未転送', 'backlog')} ${s.backlog}${
    bad && s.lastError ? html` · ${J(L, '最後のエラー', 'last error')}: ${safeText(s.lastError, 160)}` : ''
  }</p>`;
}

/** For the page: never lets a read problem break the terminals list. */
export function siemLine(ctx: Pick<ConsoleContext, 'db'>, L: Lang): Html {
  try {
    return renderSiemLine(siemStatus(ctx), L);
  } catch {
    return html``;
  }
}
