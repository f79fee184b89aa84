/**
 * 機器一覧: every USB device each terminal has reported (console/usb/devices-store.ts), searchable
 * across terminals, CSV export, and from a row "allow this model" / "register this stick"; the
 * ready-made model entries (usbModelCatalogue) with "有効にする". Every change is shown as the
 * policy page shows an edit (diff → confirm) and published through /policy/publish, which signs
 * the new version and records admin.policy_changed naming who did it and from where (`via`).
 */
import type { MediaAccess } from '../../../protocol/policy-usb.js';
import { HttpError } from '../../module.js';
import { catalogueStates, modelInterfacesOf, modelRefusal, parseDeviceQuery, proposeCatalogueEnable, proposeModelRule, proposeRegistration, registrationRefusal, USB_DEVICE_EVENT_TYPES, type Proposal, type Refusal, type UsbDeviceEventType } from '../../usb/devices.js';
import { deviceById, devicesForExport, inventoryCatchUpFor, inventoryLag, listDevices, type InventoryDevice } from '../../usb/devices-store.js';
import { BOM, csvLine } from '../csv.js';
import { html, qs, type Html } from '../html.js';
import { fmtTime, tr, type Lang, type MsgKey } from '../i18n.js';
import { terminalNames } from '../queries.js';
import { csrfField, field, isAdmin, page, type WebReq, type WebRouteSpec } from '../web.js';
import { bodyOf, proposalView } from './policy.js';
import { hostnames, pager, terminalLabel } from './common.js';

/** The export is built in memory: bounded like the events CSV. */
export const DEVICES_CSV_MAX_ROWS = 100_000;

const VERDICT_KEY: Record<UsbDeviceEventType, MsgKey> = {
  'usb.blocked': 'verdictBlocked',
  'usb.allowed': 'verdictAllowed',
  'usb.readonly': 'verdictReadonly',
  'usb.exception_used': 'verdictException',
  'usb.would_block': 'verdictWouldBlock',
};

export function verdictLabel(lang: Lang, t: UsbDeviceEventType): string {
  return tr(lang, VERDICT_KEY[t]);
}

function verdictBadge(lang: Lang, t: UsbDeviceEventType): Html {
  const cls = t === 'usb.blocked' || t === 'usb.would_block' ? 'sev-warning' : 'status-online';
  return html`<span class="badge ${cls}" data-verdict="${t}">${verdictLabel(lang, t)}</span>`;
}

function refusalText(lang: Lang, r: Refusal): string {
  return lang === 'en' ? r.en : r.ja;
}

/** The search of a GET, with the inventory brought up to date first (bounded: the tick does the rest). */
function query(r: WebReq) {
  const p = parseDeviceQuery((k) => r.api.query.get(k));
  if ('error' in p) throw new HttpError(400, 'invalid_request', p.error);
  inventoryCatchUpFor(r.ctx.db, 200);
  return p;
}

function searchForm(r: WebReq, f: Record<'text' | 'terminal' | 'verdict', string>, names: Map<string, string>): Html {
  const L = r.lang;
  const terminals = [...names.entries()].sort((a, b) => a[1].localeCompare(b[1]));
  return html`<form method="get" action="/devices" class="filters" id="device-search">
<label>${tr(L, 'search')}<input type="search" name="q" value="${f.text}" maxlength="200" placeholder="${tr(L, 'searchDevicesHint')}"></label>
<label>${tr(L, 'terminal')}<select name="terminal"><option value="">${tr(L, 'all')}</option>${terminals.map(
    ([id, h]) => html`<option value="${id}" ${f.terminal === id ? 'selected' : ''}>${h} (${id.slice(0, 8)})</option>`,
  )}</select></label>
<label>${tr(L, 'lastVerdict')}<select name="verdict"><option value="">${tr(L, 'all')}</option>${USB_DEVICE_EVENT_TYPES.map(
    (t) => html`<option value="${t}" ${f.verdict === t ? 'selected' : ''}>${verdictLabel(L, t)}</option>`,
  )}</select></label>
<button type="submit">${tr(L, 'filter')}</button> <a href="/devices">${tr(L, 'clear')}</a></form>`;
}

function catalogueSection(r: WebReq): Html {
  const L = r.lang;
  const usb = r.ctx.currentPolicy().policy.usb;
  const admin = isAdmin(r);
  const key = { enabled: 'catalogueEnabled', disabled: 'catalogueDisabled', absent: 'catalogueAbsent' } as const;
  return html`<section><h2>${tr(L, 'catalogue')}</h2><table id="catalogue"><thead><tr><th>${tr(L, 'model')}</th><th>VID:PID</th><th>${tr(L, 'interfaceClasses')}</th><th>${tr(L, 'status')}</th>${admin ? html`<th></th>` : ''}</tr></thead><tbody>
${catalogueStates(usb).map(
  ({ entry, state }) => html`<tr data-entry="${entry.id}"><td>${entry.label ?? entry.id}<br><small>${entry.comment ?? ''}</small></td><td><code>${entry.vendorId}:${entry.productId}</code></td><td><code>${entry.interfaces.join(', ')}</code></td>
<td class="state">${tr(L, key[state])}</td>${
    admin
      ? html`<td>${state === 'enabled' ? '' : html`<form method="post" action="/devices/catalogue" class="inline">${csrfField(r)}<input type="hidden" name="entry" value="${entry.id}"><button type="submit">${tr(L, 'enableEntry')}</button></form>`}</td>`
      : ''
  }</tr>`,
)}</tbody></table></section>`;
}

function actions(r: WebReq, d: InventoryDevice): Html {
  const L = r.lang;
  const model = modelRefusal(d);
  const reg = registrationRefusal(d);
  return html`<td class="actions">${
    model
      ? html`<p class="note refused" data-refusal="${model.code}">${tr(L, 'allowModel')}: ${refusalText(L, model)}</p>`
      : html`<form method="post" action="/devices/allow-model" class="inline allow-model">${csrfField(r)}<input type="hidden" name="id" value="${d.id}"><button type="submit">${tr(L, 'allowModel')}</button> <small>(${modelInterfacesOf(d.interfaces).open.join(', ')})</small></form>`
  }${
    reg === null
      ? html`<form method="post" action="/devices/register" class="inline register">${csrfField(r)}<input type="hidden" name="id" value="${d.id}"><select name="access"><option value="readonly">${tr(L, 'verdictReadonly')}</option><option value="allow">${tr(L, 'verdictAllowed')}</option></select>
<input name="label" maxlength="180" placeholder="${tr(L, 'label')}" value="${`${d.manufacturer} ${d.product}`.trim()}"><button type="submit">${tr(L, 'registerStick')}</button></form>`
      : reg.code === 'no-storage'
        ? ''
        : html`<p class="note refused" data-refusal="${reg.code}">${tr(L, 'registerStick')}: ${refusalText(L, reg)}</p>`
  }</td>`;
}

function deviceRow(r: WebReq, d: InventoryDevice, names: Map<string, string>): Html {
  const L = r.lang;
  return html`<tr data-device="${d.id}" data-vidpid="${d.vendorId}:${d.productId}"><td>${terminalLabel(names, d.agentId)}</td>
<td class="model">${`${d.manufacturer} ${d.product}`.trim() || '-'}<br><code>${d.vendorId}:${d.productId}</code></td>
<td class="serial">${d.serial || '-'}${d.serialHex ? html`<br><small class="serial-hex" title="serial bytes (hex)">#${d.serialHex.slice(0, 32)}${d.serialHex.length > 32 ? '…' : ''}</small>` : ''}</td>
<td><code>${d.interfaces.join(' ')}</code></td><td>${verdictBadge(L, d.lastType)}</td><td><code>${d.lastRule}</code></td>
<td class="nowrap">${fmtTime(d.firstSeen, L)}</td><td class="nowrap"><a href="/events/${d.lastRid}">${fmtTime(d.lastSeen, L)}</a></td><td>${d.seen}</td>
${isAdmin(r) ? actions(r, d) : ''}</tr>`;
}

/** The device a POST names (hidden id), or 404. */
function postedDevice(r: WebReq): InventoryDevice {
  const raw = field(r, 'id', 16);
  const d = /^\d{1,15}$/.test(raw) ? deviceById(r.ctx, Number(raw)) : null;
  if (!d) throw new HttpError(404, 'not_found', tr(r.lang, 'notFound'));
  return d;
}

/** The diff → confirm page for a proposal, or 400 explaining the refusal. */
function proposalPage(r: WebReq, p: Proposal, via: string, intro: Html) {
  if (!p.ok) throw new HttpError(400, 'invalid_request', refusalText(r.lang, p.refusal));
  const cur = r.ctx.currentPolicy().policy;
  const body = { ...bodyOf(cur), usb: p.usb };
  const kind = via.startsWith('devices:register:') ? 'registered' : 'model';
  return page(r, 'proposedChange', '/devices', html`${intro}<p>${tr(r.lang, 'rule')}: <code id="proposal-rule">${kind}:${p.ruleId}</code></p>${proposalView(r, body, via)}<p><a href="/devices">${tr(r.lang, 'devices')}</a></p>`);
}

function deviceIntro(r: WebReq, d: InventoryDevice, names: Map<string, string>): Html {
  return html`<p id="proposal-device"><code>${d.vendorId}:${d.productId}</code> ${`${d.manufacturer} ${d.product}`.trim()} — ${terminalLabel(names, d.agentId)} (${verdictLabel(r.lang, d.lastType)})</p>`;
}

export const deviceRoutes: WebRouteSpec[] = [
  {
    method: 'GET',
    path: '/devices',
    access: 'session',
    handle(r) {
      const L = r.lang;
      const { query: q, form } = query(r);
      const names = terminalNames(r.ctx.db);
      const p = listDevices(r.ctx, q);
      const keep = { q: form.text, terminal: form.terminal, verdict: form.verdict };
      const lag = inventoryLag(r.ctx.db);
      const body = html`<p class="note">${tr(L, 'devicesHelp')}</p>${lag ? html`<p class="note" id="inventory-lag">${tr(L, 'rollupLag')}: ${lag}</p>` : ''}${searchForm(r, form, names)}
<p class="actions"><span id="device-total">${p.devices.length} ${tr(L, 'devicesShown')} ${p.total}</span> <a class="button" id="devices-csv" href="/devices.csv${qs(keep)}" download>${tr(L, 'exportCsv')}</a></p>
${
  p.devices.length === 0
    ? html`<p>${tr(L, 'noDevices')}</p>`
    : html`<table id="devices"><thead><tr><th>${tr(L, 'terminal')}</th><th>${tr(L, 'model')}</th><th>${tr(L, 'serialNo')}</th><th>${tr(L, 'interfaceClasses')}</th><th>${tr(L, 'lastVerdict')}</th><th>${tr(L, 'rule')}</th><th>${tr(L, 'firstSeen')}</th><th>${tr(L, 'deviceLastSeen')}</th><th>${tr(L, 'timesSeen')}</th>${isAdmin(r) ? html`<th></th>` : ''}</tr></thead><tbody>
${p.devices.map((d) => deviceRow(r, d, names))}</tbody></table>`
}
${pager(L, '/devices', keep, !!q.before, p.next ? `${p.next.lastSeen}~${p.next.id}` : null)}
${catalogueSection(r)}`;
      return page(r, 'devices', '/devices', body);
    },
  },
  {
    method: 'GET',
    path: '/devices.csv',
    access: 'session',
    handle(r) {
      const { query: q } = query(r);
      const names = hostnames(r.ctx.db);
      const chunks: string[] = [
        BOM,
        csvLine(['terminal_id', 'hostname', 'vendor_id', 'product_id', 'manufacturer', 'product', 'serial', 'serial_hex', 'interfaces', 'last_verdict', 'rule', 'first_seen', 'last_seen', 'count', 'descriptor_hash', 'last_user']),
      ];
      let n = 0;
      for (const d of devicesForExport(r.ctx, q, DEVICES_CSV_MAX_ROWS)) {
        chunks.push(
          csvLine([d.agentId, names.get(d.agentId) ?? '', d.vendorId, d.productId, d.manufacturer, d.product, d.serial, d.serialHex, d.interfaces.join(' '), d.lastType, d.lastRule, d.firstSeen, d.lastSeen, d.seen, d.descriptorHash, d.lastUser ?? '']),
        );
        n++;
      }
      r.ctx.recordEvent({ type: 'admin.usb_devices_exported', user: r.session!.username, data: { rows: n, filter: Object.fromEntries(r.api.query) } });
      const stamp = new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '');
      return {
        status: 200,
        headers: { 'content-type': 'text/csv; charset=utf-8', 'content-disposition': `attachment; filename="sekimori-devices-${stamp}.csv"` },
        body: chunks.join(''),
      };
    },
  },
  {
    method: 'POST',
    path: '/devices/allow-model',
    access: 'admin',
    handle(r) {
      const d = postedDevice(r);
      const p = proposeModelRule(r.ctx.currentPolicy().policy.usb, d);
      const intro = html`${deviceIntro(r, d, terminalNames(r.ctx.db))}<p class="note">${tr(r.lang, 'proposedModelNote')}</p>`;
      return proposalPage(r, p, `devices:allow-model:${d.vendorId}:${d.productId}`, intro);
    },
  },
  {
    method: 'POST',
    path: '/devices/register',
    access: 'admin',
    handle(r) {
      const d = postedDevice(r);
      const access = field(r, 'access', 10);
      if (access !== 'allow' && access !== 'readonly') throw new HttpError(400, 'invalid_request', 'access: allow|readonly');
      const label = field(r, 'label', 400);
      const p = proposeRegistration(r.ctx.currentPolicy().policy.usb, d, access as MediaAccess, label);
      return proposalPage(r, p, `devices:register:${p.ok ? p.ruleId : 'refused'}`, deviceIntro(r, d, terminalNames(r.ctx.db)));
    },
  },
  {
    method: 'POST',
    path: '/devices/catalogue',
    access: 'admin',
    handle(r) {
      const id = field(r, 'entry', 64);
      const p = proposeCatalogueEnable(r.ctx.currentPolicy().policy.usb, id);
      return proposalPage(r, p, `devices:catalogue:${p.ok ? p.ruleId : 'refused'}`, html`<p class="note">${tr(r.lang, 'proposedModelNote')}</p>`);
    },
  },
];
