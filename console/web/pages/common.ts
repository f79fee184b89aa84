/** Small pieces shared by the pages: terminal names, event summaries, status badges. */
import type Database from 'better-sqlite3';
import { agentHostnames } from '../../backbone/store.js';
import { isUsbDeviceData, readEventData } from '../../../protocol/event-data.js';
import { safeText } from '../../../protocol/text.js';
import type { StoredEvent } from '../../core/events.js';
import { html, qs, type Html } from '../html.js';
import { tr, type Lang } from '../i18n.js';

export function hostnames(db: Database.Database): Map<string, string> {
  const rows = agentHostnames(db);
  return new Map(rows.map((r) => [r.id, r.hostname]));
}

export function terminalLabel(names: Map<string, string>, id: string): string {
  if (id === 'console') return 'console';
  const h = names.get(id);
  return h ? `${safeText(h, 64)}` : id.slice(0, 8);
}

/** The USB events whose data describes one device (protocol/event-data.ts UsbEventSchema). */
const USB_DEVICE_EVENTS = new Set(['usb.blocked', 'usb.allowed', 'usb.readonly', 'usb.exception_used', 'usb.would_block']);

/** One line describing an event's data; every value is attacker-controlled text. */
export function summary(e: StoredEvent, limit = 160): string {
  const parts: string[] = [];
  // A USB device leads with what an administrator recognises: maker, product, ids, serial, rule.
  const usb = USB_DEVICE_EVENTS.has(e.type) ? readEventData('usb.blocked', e.data) : null;
  const shown = new Set<string>();
  if (usb && isUsbDeviceData(usb)) {
    parts.push(`${usb.manufacturer} ${usb.product} (${usb.vendorId}:${usb.productId})`.trim(), `serial=${usb.serial}`, `rule=${usb.rule}`);
    for (const k of ['kind', 'manufacturer', 'product', 'vendorId', 'productId', 'serial', 'serialHex', 'rule']) shown.add(k);
  }
  for (const [k, v] of Object.entries(e.data)) {
    if (shown.has(k)) continue;
    const s = typeof v === 'string' ? v : JSON.stringify(v);
    parts.push(`${k}=${s}`);
    if (parts.join(' ').length > limit) break;
  }
  return safeText(parts.join(' '), limit);
}

export function chainBadge(lang: Lang, chain: string): Html {
  const key = chain === 'ok' ? 'chainOk' : chain === 'gap' ? 'chainGap' : chain === 'broken' ? 'chainBroken' : 'chainTampered';
  return html`<span class="badge chain-${chain === 'ok' ? 'ok' : 'bad'}">${tr(lang, key)}</span>`;
}

export function statusBadge(lang: Lang, status: string): Html {
  const key = status === 'online' ? 'online' : status === 'offline' ? 'offline' : status === 'silent' ? 'silent' : 'revoked';
  return html`<span class="badge status-${key}">${tr(lang, key)}</span>`;
}

export function sevBadge(sev: string): Html {
  return html`<span class="badge sev-${/^(info|notice|warning|critical)$/.test(sev) ? sev : 'info'}">${sev}</span>`;
}

/**
 * The newest/older links under a keyset-paged list: `keep` is the page's filter, `paged` whether
 * this page is an older one, `older` the cursor of the next page (null on the last).
 */
export function pager(lang: Lang, path: string, keep: Record<string, string>, paged: boolean, older: string | null): Html {
  return html`<nav class="pager">${paged ? html`<a href="${path}${qs(keep)}">${tr(lang, 'newest')}</a>` : ''} ${
    older ? html`<a id="older" href="${path}${qs({ ...keep, before: older })}">${tr(lang, 'older')}</a>` : ''
  }</nav>`;
}
