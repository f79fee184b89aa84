/**
 * ポリシー(フォーム): every section edited with labelled fields and short explanations instead of
 * JSON (the JSON editor on /policy stays as the advanced view). A submitted form goes through the
 * same diff → confirm → sign → version flow as every change (proposalView → /policy/publish).
 * Also "register this device" from a usb.* event (/policy/usb/register?event=<rid>): the
 * registration is built from the event's RAW identity (serialHex, VID:PID, descriptor hash), never
 * from its display text, by the same proposal code the device inventory uses.
 */
import { readEventData } from '../../../protocol/event-data.js';
import type { PolicyBody, PolicyDocument } from '../../../protocol/policy.js';
import type { MediaAccess } from '../../../protocol/policy-usb.js';
import { changed, diffLines, withContext, type DiffLine } from '../diff.js';
import { HttpError } from '../../module.js';
import { isUsbDeviceEventType, proposeRegistration, registrationRefusal, sightingOf, type DeviceSighting } from '../../usb/devices.js';
import { html, type Html } from '../html.js';
import { fmtTime, tr, type Lang } from '../i18n.js';
import { applyForm, classChoices, errorText, NEW_ROW, shownValue, type FormGet } from '../policy-form.js';
import { eventByRid, terminalNames } from '../queries.js';
import { csrfField, field, isAdmin, page, type WebReq, type WebRouteSpec } from '../web.js';
import { terminalLabel } from './common.js';

type Obj = Record<string, unknown>;

/**
 * The body of a signed document: everything but its version data, including sections this
 * console version does not know (another's optional section must survive an edit here).
 */
export function bodyOf(doc: PolicyDocument): PolicyBody {
  const { version: _v, issuedAt: _i, issuedBy: _b, ...body } = doc;
  return body;
}

export function pretty(x: unknown): string {
  return JSON.stringify(x, null, 2);
}

export function diffView(d: DiffLine[], lang: Lang): Html {
  if (!changed(d)) return html`<p>${tr(lang, 'noChanges')}</p>`;
  return html`<pre class="diff" id="policy-diff">${withContext(d).map((l) =>
    l.op === '…' ? html`<span class="skip">  …\n</span>` : html`<span class="${l.op === '+' ? 'add' : l.op === '-' ? 'del' : 'same'}">${l.op} ${l.text}\n</span>`,
  )}</pre>`;
}

/** Where a change was proposed from (e.g. `devices:allow-model:054c:06c1`), recorded in admin.policy_changed. */
export const VIA = /^[a-z-]{1,32}:[A-Za-z0-9_.:-]{1,96}$/;

export function confirmForm(r: WebReq, body: unknown, base: number, from: number | null, via: string | null = null): Html {
  return html`<form method="post" action="/policy/publish" id="publish-form">${csrfField(r)}<input type="hidden" name="base" value="${base}">${
    from !== null ? html`<input type="hidden" name="from" value="${from}">` : ''
  }${via !== null && VIA.test(via) ? html`<input type="hidden" name="via" value="${via}">` : ''}<input type="hidden" name="body" value="${JSON.stringify(body)}"><button type="submit">${tr(r.lang, 'publish')}</button></form>`;
}

/**
 * A change proposed elsewhere (the forms, the devices page: allow a model, register a stick,
 * enable a catalogue entry) shown exactly as the JSON preview shows an edit: diff against the
 * policy in force, then the same confirm form, which signs and publishes through /policy/publish.
 */
export function proposalView(r: WebReq, body: PolicyBody, via: string): Html {
  const L = r.lang;
  const cur = r.ctx.currentPolicy().policy;
  const d = diffLines(pretty(bodyOf(cur)), pretty(body));
  return html`<p>${tr(L, 'currentPolicy')}: v${cur.version} → v${cur.version + 1}</p><h2>${tr(L, 'diff')}</h2>${diffView(d, L)}
${changed(d) ? confirmForm(r, body, cur.version, null, via) : ''}`;
}

type T2 = readonly [string, string];

/** The words of these pages (kept here: the shared dictionary holds the words every page uses). */
const W = {
  title: ['ポリシー(フォーム編集)', 'Policy (forms)'],
  intro: [
    '各項目を変更して「変更内容を確認」を押すと、現行ポリシーとの差分が表示されます。確認のうえ公開すると、署名された新しい版が全端末に配布されます。',
    'Change settings and press "Review changes" to see the difference from the policy in force; publishing signs a new version that every terminal receives.',
  ],
  tabForms: ['フォームで編集', 'Edit with forms'],
  tabJson: ['詳細(JSON)', 'Advanced (JSON)'],
  review: ['変更内容を確認', 'Review changes'],
  fieldErrors: ['入力に誤りがあります。該当する項目の説明を確認してください。何も公開していません。', 'Some fields are not valid (see the messages next to them). Nothing was published.'],
  usb: ['外部記録媒体(USB機器)', 'Removable media (USB devices)'],
  mfa: ['多要素認証', 'Multi-factor authentication'],
  software: ['無許可ソフトウェア', 'Unauthorized software'],
  agent: ['端末エージェント', 'Terminal agent'],
  usbMode: ['動作モード', 'Mode'],
  usbModeHelp: ['「監視のみ」は遮断せず、遮断すべき操作を記録だけします。', '"Monitor" blocks nothing and only records what would be blocked.'],
  enforce: ['制御する', 'Enforce'],
  monitor: ['監視のみ', 'Monitor only'],
  allow: ['許可', 'Allow'],
  block: ['遮断', 'Block'],
  readonly: ['読み取り専用', 'Read-only'],
  classRules: ['機器の種類ごとの扱い', 'Per device class'],
  classRulesHelp: [
    '上から順に、最初に一致した行が機器の各インタフェースの扱いを決めます。読み取り専用は記憶装置(USBメモリ)だけに設定できます。',
    'The first matching row decides each interface of a device. Read-only exists for storage (USB sticks) only.',
  ],
  deviceClass: ['種類', 'Class'],
  handling: ['扱い', 'Handling'],
  defaultVerdict: ['どの行にも一致しない機器', 'Devices no row matches'],
  optical: ['内蔵の光学ドライブ(CD/DVD)', 'Built-in optical drive (CD/DVD)'],
  sdCard: ['SDカードスロット', 'SD card slot'],
  pollSeconds: ['一時許可の確認間隔(秒)', 'Exception check interval (s)'],
  pollSecondsHelp: ['端末が一時許可を管理コンソールに問い合わせる間隔です(機器の接続時にも問い合わせます)。', 'How often terminals ask the console for temporary exceptions (also on every plug).'],
  models: ['機種ルール(カードリーダー等)', 'Model rules (card readers etc.)'],
  modelsHelp: ['有効にした機種は、記載のインタフェースだけが使えます。記憶装置・通信のインタフェースは開きません。', 'An enabled model opens only the interfaces listed, never storage or network ones.'],
  model: ['機種', 'Model'],
  interfaces: ['インタフェース', 'Interfaces'],
  enabled: ['有効', 'Enabled'],
  registered: ['登録媒体', 'Registered media'],
  registeredHelp: [
    '登録したUSBメモリは「遮断」の設定にかかわらず使えます(許可または読み取り専用)。機器はベンダーID・製品ID・シリアル番号で特定します。',
    'Registered sticks work whatever the class setting (allowed or read-only), identified by vendor ID, product ID and serial number.',
  ],
  vendorId: ['ベンダーID', 'Vendor ID'],
  productId: ['製品ID', 'Product ID'],
  serial: ['シリアル番号', 'Serial number'],
  access: ['扱い', 'Access'],
  label: ['名称', 'Label'],
  remove: ['削除', 'Remove'],
  addRow: ['追加', 'Add'],
  noRegistered: ['登録媒体はありません。', 'No registered media.'],
  offlineAllowed: ['オフライン時の認証', 'Offline verification'],
  offlineAllowedHelp: ['管理コンソールに接続できないとき、端末が暗号化キャッシュで認証コードを確認してよいか。', 'May terminals verify codes from their encrypted cache while the console is unreachable?'],
  offlineMaxAgeHours: ['オフラインキャッシュの有効時間(時間)', 'Offline cache age limit (hours)'],
  windowSteps: ['時刻のずれの許容(ステップ)', 'Clock drift tolerance (steps)'],
  windowStepsHelp: ['1 = 前後30秒。大きくすると推測されやすくなります。', '1 = ±30 s. Larger values make guessing easier.'],
  maxFailures: ['ロックまでの失敗回数', 'Failures before lock'],
  lockoutSeconds: ['ロック時間(秒)', 'Lock duration (s)'],
  breakGlass: ['エージェント停止時はパスワードのみで許可', 'Password alone when the agent is down'],
  breakGlassHelp: ['通常は「いいえ」(エージェントに問い合わせできないときはログインを拒否します)。', 'Normally "No" (logins are refused when the agent cannot be asked).'],
  requireAssignment: ['割り当てられた端末でのみ認証', 'Only on assigned terminals'],
  yes: ['はい', 'Yes'],
  no: ['いいえ', 'No'],
  swMode: ['動作モード', 'Mode'],
  swModeHelp: ['「制御する」では許可されていないプログラムを停止・隔離します。', '"Enforce" stops and quarantines programs that are not allowed.'],
  locations: ['監視する場所', 'Watched locations'],
  locationsHelp: ['1行に1つ、絶対パスで。ここにある実行ファイルが判定の対象になります。', 'One absolute path per line; executables there are judged.'],
  watchDepth: ['監視する深さ', 'Watch depth'],
  scanIntervalMs: ['プロセス確認の間隔(ミリ秒)', 'Process scan interval (ms)'],
  syncSeconds: ['管理コンソールとの同期間隔(秒)', 'Console sync interval (s)'],
  quarantine: ['許可されていないファイルを隔離', 'Quarantine unauthorized files'],
  preExec: ['実行前に判定(Linux)', 'Judge before execution (Linux)'],
  preExecFallback: ['判定が間に合わないとき', 'When no verdict arrives in time'],
  deny: ['実行させない', 'Deny'],
  allowRun: ['実行させる', 'Allow'],
  heartbeatSeconds: ['死活監視の間隔(秒)', 'Heartbeat interval (s)'],
  heartbeatHelp: ['3回続けて届かないと、端末を「応答なし」として警告します。', 'Three missed beats mark a terminal silent and raise an alert.'],
  uploadBatchSize: ['一度に送る操作ログの件数', 'Events per upload'],
  otherErrors: ['フォームにない項目の誤り', 'Errors in settings this form does not show'],
  registerTitle: ['操作ログから媒体を登録', 'Register a device from the log'],
  registerIntro: ['この操作ログの機器(ベンダーID・製品ID・シリアル番号・記述子ハッシュ)を登録媒体に加えます。', 'Adds the device of this event (vendor ID, product ID, serial number, descriptor hash) to the registered media.'],
  notUsbEvent: ['このイベントはUSB機器のものではないため、登録できません。', 'This event is not about a USB device; nothing can be registered from it.'],
  event: ['イベント', 'Event'],
  proposal: ['登録の差分', 'Registration diff'],
} as const satisfies Record<string, T2>;

function w(L: Lang, k: keyof typeof W): string {
  return W[k][L === 'en' ? 1 : 0];
}

/** Well-known interface classes by their names on the counter, Japanese first. */
const CLASS_NAMES: Record<string, T2> = {
  '01': ['オーディオ(ヘッドセット)', 'Audio (headsets)'],
  '02': ['通信(CDC・テザリング)', 'Communications (CDC, tethering)'],
  '03': ['キーボード・マウス(HID)', 'Keyboard, mouse (HID)'],
  '06': ['カメラ・スマートフォン(MTP/PTP)', 'Camera, phone (MTP/PTP)'],
  '07': ['プリンター', 'Printer'],
  '08': ['USBメモリ・外付けディスク(記憶装置)', 'USB stick, external disk (mass storage)'],
  '09': ['USBハブ', 'USB hub'],
  '0a': ['CDCデータ', 'CDC data'],
  '0b': ['ICカードリーダー', 'Smart-card reader'],
  '0e': ['カメラ(映像)', 'Video camera'],
  e0: ['無線(Bluetooth・RNDIS)', 'Wireless (Bluetooth, RNDIS)'],
  'ef/04': ['RNDIS(ネットワーク)', 'RNDIS (network)'],
  ff: ['ベンダー固有', 'Vendor specific'],
};

function className(L: Lang, r: Obj): string {
  const key = [r.class, r.subclass, r.protocol].filter((x) => typeof x === 'string').join('/');
  const n = CLASS_NAMES[key];
  return n ? n[L === 'en' ? 1 : 0] : key;
}

const CHOICE_WORD: Record<string, keyof typeof W> = { allow: 'allow', block: 'block', readonly: 'readonly', enforce: 'enforce', monitor: 'monitor', deny: 'deny' };

interface FormView {
  L: Lang;
  body: Obj;
  /** The submitted values, shown again after an error (so nothing typed is lost). */
  submitted: FormGet | null;
  errors: Map<string, string[]>;
  readonly: boolean;
}

function shown(v: FormView, name: string): string {
  const s = v.submitted?.(name);
  if (s !== null && s !== undefined) return s;
  const x = name.includes('[') ? undefined : shownValue(v.body, name);
  if (Array.isArray(x)) return x.join('\n');
  return x === undefined || x === null ? '' : String(x);
}

function fieldId(name: string): string {
  return 'f-' + name.replace(/[^A-Za-z0-9_-]/g, '_');
}

function errs(v: FormView, name: string): Html | '' {
  const e = v.errors.get(name);
  return e ? html`<span class="field-error" role="alert" data-for="${name}">${e.map((x) => html`${errorText(x, v.L)} <small>(${x.replace(/^policy\./, '')})</small> `)}</span>` : '';
}

function select(v: FormView, name: string, options: readonly string[], words: Record<string, string>, current: string): Html {
  return html`<select name="${name}" id="${fieldId(name)}" ${v.readonly ? 'disabled' : ''} class="${v.errors.has(name) ? 'invalid' : ''}">${options.map(
    (o) => html`<option value="${o}" ${o === current ? 'selected' : ''}>${words[o] ?? o}</option>`,
  )}</select>`;
}

function choiceWords(L: Lang, options: readonly string[]): Record<string, string> {
  return Object.fromEntries(options.map((o) => [o, CHOICE_WORD[o] ? w(L, CHOICE_WORD[o]) : o]));
}

/** One labelled setting: label, control, error next to it, short explanation. */
function row(v: FormView, name: string, label: keyof typeof W, control: Html, help?: keyof typeof W): Html {
  return html`<div class="form-field${v.errors.has(name) ? ' has-error' : ''}" data-field="${name}"><label for="${fieldId(name)}">${w(v.L, label)}</label><div>${control}${errs(v, name)}${help ? html`<p class="help">${w(v.L, help)}</p>` : ''}</div></div>`;
}

function choiceRow(v: FormView, name: string, label: keyof typeof W, options: readonly string[], help?: keyof typeof W): Html {
  return row(v, name, label, select(v, name, options, choiceWords(v.L, options), shown(v, name)), help);
}

function intRow(v: FormView, name: string, label: keyof typeof W, help?: keyof typeof W): Html {
  return row(v, name, label, html`<input name="${name}" id="${fieldId(name)}" inputmode="numeric" size="8" maxlength="12" value="${shown(v, name)}" ${v.readonly ? 'readonly' : ''} class="${v.errors.has(name) ? 'invalid' : ''}">`, help);
}

function boolRow(v: FormView, name: string, label: keyof typeof W, help?: keyof typeof W): Html {
  return row(v, name, label, select(v, name, ['true', 'false'], { true: w(v.L, 'yes'), false: w(v.L, 'no') }, shown(v, name)), help);
}

function usbSection(v: FormView): Html {
  const L = v.L;
  const usb = (v.body.usb ?? {}) as Obj;
  const rules = Array.isArray(usb.classRules) ? (usb.classRules as unknown[]) : [];
  const models = Array.isArray(usb.models) ? (usb.models as unknown[]) : [];
  const regs = Array.isArray(usb.registered) ? (usb.registered as unknown[]) : [];
  const nw = (k: string) => `usb.registered[${NEW_ROW}].${k}`;
  return html`<fieldset id="form-usb"><legend>${w(L, 'usb')}</legend>
${choiceRow(v, 'usb.mode', 'usbMode', ['enforce', 'monitor'], 'usbModeHelp')}
<h3>${w(L, 'classRules')}</h3><p class="help">${w(L, 'classRulesHelp')}</p>
<table id="class-rules"><thead><tr><th>${w(L, 'deviceClass')}</th><th>${w(L, 'handling')}</th></tr></thead><tbody>${rules.map((r, i) => {
    if (typeof r !== 'object' || r === null) return '';
    const o = r as Obj;
    const name = `usb.classRules[${i}].verdict`;
    const code = [o.class, o.subclass, o.protocol].filter((x) => typeof x === 'string').join('/');
    return html`<tr data-class="${code}"><td><label for="${fieldId(name)}">${className(L, o)}</label> <code>${code}</code>${typeof o.comment === 'string' ? html`<br><small>${o.comment}</small>` : ''}</td><td>${select(v, name, classChoices(o), choiceWords(L, classChoices(o)), shown(v, name) || String(o.verdict))}${errs(v, name)}</td></tr>`;
  })}</tbody></table>
${choiceRow(v, 'usb.defaultVerdict', 'defaultVerdict', ['block', 'allow'])}
${choiceRow(v, 'usb.optical', 'optical', ['block', 'readonly', 'allow'])}
${choiceRow(v, 'usb.sdCard', 'sdCard', ['block', 'readonly', 'allow'])}
${intRow(v, 'usb.exceptionPollSeconds', 'pollSeconds', 'pollSecondsHelp')}
<h3>${w(L, 'models')}</h3><p class="help">${w(L, 'modelsHelp')}</p>
<table id="model-rules"><thead><tr><th>${w(L, 'model')}</th><th>VID:PID</th><th>${w(L, 'interfaces')}</th><th>${w(L, 'enabled')}</th></tr></thead><tbody>${models.map((m, i) => {
    if (typeof m !== 'object' || m === null) return '';
    const o = m as Obj;
    const name = `usb.models[${i}].enabled`;
    const on = (v.submitted?.(name) ?? String(o.enabled)) === 'true';
    return html`<tr data-model="${String(o.id)}"><td><label for="${fieldId(name)}">${String(o.label ?? o.id)}</label>${typeof o.comment === 'string' ? html`<br><small>${o.comment}</small>` : ''}</td><td><code>${String(o.vendorId)}:${String(o.productId)}</code></td><td><code>${Array.isArray(o.interfaces) ? o.interfaces.join(', ') : ''}</code></td>
<td><input type="hidden" name="${name}" value="false"><input type="checkbox" name="${name}" id="${fieldId(name)}" value="true" ${on ? 'checked' : ''} ${v.readonly ? 'disabled' : ''}>${errs(v, name)}</td></tr>`;
  })}</tbody></table>
<h3>${w(L, 'registered')}</h3><p class="help">${w(L, 'registeredHelp')}</p>
<table id="registered"><thead><tr><th>${w(L, 'label')}</th><th>VID:PID</th><th>${w(L, 'serial')}</th><th>${w(L, 'access')}</th><th>${w(L, 'remove')}</th></tr></thead><tbody>${regs.map((r, i) => {
    if (typeof r !== 'object' || r === null) return '';
    const o = r as Obj;
    const f = (k: string) => `usb.registered[${i}].${k}`;
    const access = v.submitted?.(f('access')) ?? String(o.access);
    const label = v.submitted?.(f('label')) ?? (typeof o.label === 'string' ? o.label : '');
    return html`<tr data-registered="${String(o.id)}"><td><input name="${f('label')}" id="${fieldId(f('label'))}" value="${label}" maxlength="200" aria-label="${w(L, 'label')}" ${v.readonly ? 'readonly' : ''}>${errs(v, f('label'))}</td>
<td><code>${String(o.vendorId)}:${String(o.productId)}</code></td><td class="serial"><code>${String(o.serial)}</code>${typeof o.descriptorHash === 'string' ? html`<br><small title="descriptor sha256">#${o.descriptorHash.slice(0, 16)}…</small>` : ''}</td>
<td>${select(v, f('access'), ['readonly', 'allow'], choiceWords(L, ['readonly', 'allow']), access)}${errs(v, f('access'))}</td>
<td><input type="checkbox" name="${f('remove')}" value="true" aria-label="${w(L, 'remove')}" ${v.submitted?.(f('remove')) === 'true' ? 'checked' : ''} ${v.readonly ? 'disabled' : ''}></td></tr>`;
  })}${
    regs.length === 0 ? html`<tr><td colspan="5" class="note">${w(L, 'noRegistered')}</td></tr>` : ''
  }${
    v.readonly
      ? ''
      : html`<tr id="registered-new"><td><input name="${nw('label')}" id="${fieldId(nw('label'))}" value="${v.submitted?.(nw('label')) ?? ''}" maxlength="200" placeholder="${w(L, 'label')}" aria-label="${w(L, 'label')}">${errs(v, nw('label'))}</td>
<td><input name="${nw('vendorId')}" id="${fieldId(nw('vendorId'))}" value="${v.submitted?.(nw('vendorId')) ?? ''}" size="5" maxlength="4" placeholder="${w(L, 'vendorId')}" aria-label="${w(L, 'vendorId')}">:<input name="${nw('productId')}" id="${fieldId(nw('productId'))}" value="${v.submitted?.(nw('productId')) ?? ''}" size="5" maxlength="4" placeholder="${w(L, 'productId')}" aria-label="${w(L, 'productId')}">${errs(v, nw('vendorId'))}${errs(v, nw('productId'))}</td>
<td><input name="${nw('serial')}" id="${fieldId(nw('serial'))}" value="${v.submitted?.(nw('serial')) ?? ''}" maxlength="255" placeholder="${w(L, 'serial')}" aria-label="${w(L, 'serial')}">${errs(v, nw('serial'))}</td>
<td>${select(v, nw('access'), ['readonly', 'allow'], choiceWords(L, ['readonly', 'allow']), v.submitted?.(nw('access')) ?? 'readonly')}</td><td>${w(L, 'addRow')}</td></tr>`
  }</tbody></table></fieldset>`;
}

function mfaSection(v: FormView): Html {
  return html`<fieldset id="form-mfa"><legend>${w(v.L, 'mfa')}</legend>
${boolRow(v, 'mfa.offlineAllowed', 'offlineAllowed', 'offlineAllowedHelp')}
${intRow(v, 'mfa.offlineMaxAgeHours', 'offlineMaxAgeHours')}
${intRow(v, 'mfa.windowSteps', 'windowSteps', 'windowStepsHelp')}
${intRow(v, 'mfa.maxFailures', 'maxFailures')}
${intRow(v, 'mfa.lockoutSeconds', 'lockoutSeconds')}
${boolRow(v, 'mfa.breakGlass', 'breakGlass', 'breakGlassHelp')}
${boolRow(v, 'mfa.requireAssignment', 'requireAssignment')}</fieldset>`;
}

function softwareSection(v: FormView): Html {
  const L = v.L;
  const loc = 'software.locations';
  return html`<fieldset id="form-software"><legend>${w(L, 'software')}</legend>
${choiceRow(v, 'software.mode', 'swMode', ['monitor', 'enforce'], 'swModeHelp')}
${row(v, loc, 'locations', html`<textarea name="${loc}" id="${fieldId(loc)}" rows="8" spellcheck="false" ${v.readonly ? 'readonly' : ''} class="${v.errors.has(loc) ? 'invalid' : ''}">${shown(v, loc)}</textarea>`, 'locationsHelp')}
${intRow(v, 'software.watchDepth', 'watchDepth')}
${intRow(v, 'software.scanIntervalMs', 'scanIntervalMs')}
${intRow(v, 'software.syncSeconds', 'syncSeconds')}
${boolRow(v, 'software.quarantine.enabled', 'quarantine')}
${boolRow(v, 'software.preExec.enabled', 'preExec')}
${row(v, 'software.preExec.fallback', 'preExecFallback', select(v, 'software.preExec.fallback', ['deny', 'allow'], { deny: w(L, 'deny'), allow: w(L, 'allowRun') }, shown(v, 'software.preExec.fallback')))}</fieldset>`;
}

function agentSection(v: FormView): Html {
  return html`<fieldset id="form-agent"><legend>${w(v.L, 'agent')}</legend>
${intRow(v, 'agent.heartbeatSeconds', 'heartbeatSeconds', 'heartbeatHelp')}
${intRow(v, 'agent.uploadBatchSize', 'uploadBatchSize')}</fieldset>`;
}

/** The tabs between the forms and the JSON (advanced) view. */
export function policyTabs(L: Lang, active: 'forms' | 'json'): Html {
  return html`<p class="tabs" id="policy-tabs"><a href="/policy/forms" class="${active === 'forms' ? 'active' : ''}">${w(L, 'tabForms')}</a> <a href="/policy" class="${active === 'json' ? 'active' : ''}">${w(L, 'tabJson')}</a></p>`;
}

function formsPage(r: WebReq, body: Obj, base: number, submitted: FormGet | null, errors: Map<string, string[]>, other: string[], status = 200) {
  const L = r.lang;
  const v: FormView = { L, body, submitted, errors, readonly: !isAdmin(r) };
  const cur = r.ctx.currentPolicy().policy;
  const out = html`${policyTabs(L, 'forms')}<p>${tr(L, 'currentPolicy')}: <strong id="policy-version">v${cur.version}</strong> (${fmtTime(cur.issuedAt, L)}, ${cur.issuedBy})</p>
${errors.size || other.length ? html`<div class="error" role="alert" id="form-errors"><p>${w(L, 'fieldErrors')}</p><ul>${[...errors.entries()].slice(0, 100).map(([name, e]) => html`<li><a href="#${fieldId(name)}">${name}</a>: ${errorText(e[0]!, L)}</li>`)}</ul>${other.length ? html`<p>${w(L, 'otherErrors')}:</p><ul>${other.slice(0, 100).map((e) => html`<li>${e}</li>`)}</ul>` : ''}</div>` : ''}
<p class="note">${w(L, 'intro')}</p>
<form method="post" action="/policy/forms/preview" id="policy-forms" class="policy-forms">${csrfField(r)}<input type="hidden" name="base" value="${base}">
${usbSection(v)}${mfaSection(v)}${softwareSection(v)}${agentSection(v)}
${v.readonly ? '' : html`<p><button type="submit" id="review">${w(L, 'review')}</button></p>`}</form>`;
  return page(r, 'policy', '/policy/forms', html`${out}`, status);
}

/** The form's values: the last of repeated names (a checkbox after its hidden "false"). */
function formGetter(r: WebReq): FormGet {
  return (name) => {
    const all = r.form.getAll(name);
    return all.length ? all[all.length - 1]! : null;
  };
}

/** The device a usb.* event describes (raw identity from the stored data), or a 400 saying why not. */
function eventDevice(r: WebReq, raw: string | null): { sighting: DeviceSighting; rid: number } {
  const L = r.lang;
  if (!raw || !/^\d{1,15}$/.test(raw)) throw new HttpError(400, 'invalid_request', 'event: expected an event number');
  const e = eventByRid(r.ctx.db, Number(raw));
  if (!e) throw new HttpError(404, 'not_found', tr(L, 'notFound'));
  const data = isUsbDeviceEventType(e.type) ? readEventData(e.type, e.data) : null;
  const s = data ? sightingOf(e.agentId, e.type, data, e.user, e.ts, e.rid) : null;
  if (!s) throw new HttpError(400, 'invalid_request', w(L, 'notUsbEvent'));
  const why = registrationRefusal(s);
  if (why) throw new HttpError(400, 'invalid_request', L === 'en' ? why.en : why.ja);
  return { sighting: s, rid: e.rid };
}

function deviceFacts(r: WebReq, s: DeviceSighting, rid: number): Html {
  const L = r.lang;
  const names = terminalNames(r.ctx.db);
  return html`<dl class="detail" id="register-device"><dt>${w(L, 'event')}</dt><dd><a href="/events/${rid}">#${rid}</a> ${s.type} — ${fmtTime(s.ts, L)}</dd>
<dt>${tr(L, 'terminal')}</dt><dd>${terminalLabel(names, s.agentId)}</dd>
<dt>${w(L, 'model')}</dt><dd>${`${s.manufacturer} ${s.product}`.trim() || '-'}</dd>
<dt>VID:PID</dt><dd><code>${s.vendorId}:${s.productId}</code></dd>
<dt>${w(L, 'serial')}</dt><dd><code>${s.serial}</code> <small>(hex ${s.serialHex.slice(0, 64)})</small></dd>
${s.descriptorHash ? html`<dt>descriptor sha256</dt><dd><code>${s.descriptorHash}</code></dd>` : ''}</dl>`;
}

export const policyFormRoutes: WebRouteSpec[] = [
  {
    method: 'GET',
    path: '/policy/forms',
    access: 'session',
    handle(r) {
      const cur = r.ctx.currentPolicy().policy;
      return formsPage(r, bodyOf(cur) as unknown as Obj, cur.version, null, new Map(), []);
    },
  },
  {
    method: 'POST',
    path: '/policy/forms/preview',
    access: 'admin',
    maxBody: 1024 * 1024,
    handle(r) {
      const L = r.lang;
      const cur = r.ctx.currentPolicy().policy;
      const base = Number(field(r, 'base', 12));
      // The form's rows are numbered in the version it was built from: applied to another, a row could name another rule.
      if (base !== cur.version) return page(r, 'policy', '/policy/forms', html`<p class="error" role="alert">${tr(L, 'staleBase')}</p><p><a href="/policy/forms">${w(L, 'title')}</a></p>`, 409);
      const body = bodyOf(cur) as unknown as Obj;
      const get = formGetter(r);
      const res = applyForm(body, get);
      if (res.fieldErrors.size || res.otherErrors.length) return formsPage(r, body, base, get, res.fieldErrors, res.otherErrors, 422);
      return page(r, 'policy', '/policy/forms', html`${policyTabs(L, 'forms')}${proposalView(r, res.body as unknown as PolicyBody, 'policy-forms:edit')}<p><a href="/policy/forms">${w(L, 'title')}</a></p>`);
    },
  },
  {
    method: 'GET',
    path: '/policy/usb/register',
    access: 'session',
    handle(r) {
      const L = r.lang;
      const { sighting: s, rid } = eventDevice(r, r.api.query.get('event'));
      const label = `${s.manufacturer} ${s.product}`.trim();
      const form = isAdmin(r)
        ? html`<form method="post" action="/policy/usb/register" id="register-form" class="row">${csrfField(r)}<input type="hidden" name="event" value="${rid}">
<label>${w(L, 'access')}<select name="access"><option value="readonly">${w(L, 'readonly')}</option><option value="allow">${w(L, 'allow')}</option></select></label>
<label>${w(L, 'label')}<input name="label" maxlength="180" value="${label}"></label><button type="submit">${tr(L, 'registerStick')}</button></form>`
        : '';
      return page(r, 'policy', '/policy/forms', html`<h2>${w(L, 'registerTitle')}</h2><p class="note">${w(L, 'registerIntro')}</p>${deviceFacts(r, s, rid)}${form}`);
    },
  },
  {
    method: 'POST',
    path: '/policy/usb/register',
    access: 'admin',
    handle(r) {
      const L = r.lang;
      const { sighting: s, rid } = eventDevice(r, field(r, 'event', 16));
      const access = field(r, 'access', 10);
      if (access !== 'allow' && access !== 'readonly') throw new HttpError(400, 'invalid_request', 'access: allow|readonly');
      const cur = r.ctx.currentPolicy().policy;
      const p = proposeRegistration(cur.usb, s, access as MediaAccess, field(r, 'label', 400));
      if (!p.ok) throw new HttpError(400, 'invalid_request', L === 'en' ? p.refusal.en : p.refusal.ja);
      return page(
        r,
        'policy',
        '/policy',
        html`<h2>${w(L, 'proposal')}</h2>${deviceFacts(r, s, rid)}<p>${tr(L, 'rule')}: <code id="proposal-rule">registered:${p.ruleId}</code></p>${proposalView(r, { ...bodyOf(cur), usb: p.usb }, `events:register:${p.ruleId}`)}`,
      );
    },
  },
];
