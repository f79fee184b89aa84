/**
 * ポリシーのフォーム編集, the pure part: which form fields exist for a policy body, how submitted
 * fields change the body, and which field each validation error belongs to. No I/O.
 *
 * A submitted form only changes the settings it names: everything else in the body (sections and
 * settings this form does not know, e.g. ones added after it was written) is carried over as it
 * is, so the signed diff shows exactly what the administrator changed. Field names are the
 * validator's paths without `policy.` (`usb.classRules[5].verdict`), so a validator error
 * (`policy.usb.classRules[5].verdict: must be …`) lands next to its field.
 */
import { policyBodyErrors } from '../../protocol/policy.js';
import { defaultMfaPolicy } from '../../protocol/policy-mfa.js';
import { defaultSoftwarePolicy } from '../../protocol/policy-software.js';
import type { Lang } from './i18n.js';

/** A submitted form: the value of a field (the last one when repeated), null when absent. */
export type FormGet = (name: string) => string | null;

type Obj = Record<string, unknown>;

function isObj(x: unknown): x is Obj {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Bounds on what a form may carry (the validators bound the policy itself). */
export const MAX_FIELD = 4096;
export const MAX_LINES_FIELD = 64 * 1024;

/** The new-row marker of the registered-media table. */
export const NEW_ROW = 'new';

type Scalar =
  | { name: string; kind: 'choice'; options: readonly string[] }
  | { name: string; kind: 'int' }
  | { name: string; kind: 'bool' }
  | { name: string; kind: 'lines' };

/** The scalar settings the form edits, with what a missing (optional) member means. */
export const SCALARS: readonly Scalar[] = [
  { name: 'usb.mode', kind: 'choice', options: ['enforce', 'monitor'] },
  { name: 'usb.defaultVerdict', kind: 'choice', options: ['block', 'allow'] },
  { name: 'usb.optical', kind: 'choice', options: ['block', 'readonly', 'allow'] },
  { name: 'usb.sdCard', kind: 'choice', options: ['block', 'readonly', 'allow'] },
  { name: 'usb.exceptionPollSeconds', kind: 'int' },
  { name: 'mfa.offlineAllowed', kind: 'bool' },
  { name: 'mfa.offlineMaxAgeHours', kind: 'int' },
  { name: 'mfa.windowSteps', kind: 'int' },
  { name: 'mfa.maxFailures', kind: 'int' },
  { name: 'mfa.lockoutSeconds', kind: 'int' },
  { name: 'mfa.breakGlass', kind: 'bool' },
  { name: 'mfa.requireAssignment', kind: 'bool' },
  { name: 'software.mode', kind: 'choice', options: ['monitor', 'enforce'] },
  { name: 'software.locations', kind: 'lines' },
  { name: 'software.watchDepth', kind: 'int' },
  { name: 'software.scanIntervalMs', kind: 'int' },
  { name: 'software.syncSeconds', kind: 'int' },
  { name: 'software.quarantine.enabled', kind: 'bool' },
  { name: 'software.preExec.enabled', kind: 'bool' },
  { name: 'software.preExec.fallback', kind: 'choice', options: ['deny', 'allow'] },
  { name: 'agent.heartbeatSeconds', kind: 'int' },
  { name: 'agent.uploadBatchSize', kind: 'int' },
];

/** What an absent optional member means (the agent fills the same defaults). */
function defaultAt(path: string): unknown {
  const [section, ...rest] = path.split('.');
  const d: unknown = section === 'mfa' ? defaultMfaPolicy() : section === 'software' ? defaultSoftwarePolicy() : undefined;
  return rest.reduce<unknown>((o, k) => (isObj(o) ? o[k] : undefined), d);
}

function getPath(body: Obj, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (isObj(o) ? o[k] : undefined), body);
}

/** Sets a member, creating missing parent objects; false when a parent is not an object. */
function setPath(body: Obj, path: string, value: unknown): boolean {
  const keys = path.split('.');
  let o: Obj = body;
  for (const k of keys.slice(0, -1)) {
    if (o[k] === undefined) o[k] = {};
    const next = o[k];
    if (!isObj(next)) return false;
    o = next;
  }
  o[keys.at(-1)!] = value;
  return true;
}

/** The value a field shows: the body's, else the default an absent optional member means. */
export function shownValue(body: Obj, name: string): unknown {
  const v = getPath(body, name);
  return v === undefined ? defaultAt(name) : v;
}

/** A class rule's choices: read-only exists for mass storage (class 08) as a whole only. */
export function classChoices(rule: unknown): readonly string[] {
  return isObj(rule) && rule.class === '08' && rule.subclass === undefined ? ['block', 'readonly', 'allow'] : ['block', 'allow'];
}

function list(body: Obj, section: string, key: string): unknown[] {
  const s = body[section];
  const l = isObj(s) ? s[key] : undefined;
  return Array.isArray(l) ? l : [];
}

/** Every field the form shows for this body (the page renders these; errors are matched to them). */
export function fieldNames(body: Obj): string[] {
  const names = SCALARS.map((s) => s.name);
  list(body, 'usb', 'classRules').forEach((_, i) => names.push(`usb.classRules[${i}].verdict`));
  list(body, 'usb', 'models').forEach((_, i) => names.push(`usb.models[${i}].enabled`));
  list(body, 'usb', 'registered').forEach((_, i) => names.push(...['access', 'label', 'remove'].map((k) => `usb.registered[${i}].${k}`)));
  names.push(...['vendorId', 'productId', 'serial', 'access', 'label'].map((k) => `usb.registered[${NEW_ROW}].${k}`));
  return names;
}

export interface FormResult {
  /** The body with the submitted changes (valid only when there are no errors). */
  body: Obj;
  /** Errors per field name (messages as the validator or the parser wrote them). */
  fieldErrors: Map<string, string[]>;
  /** Errors no field shown names (e.g. a setting only the JSON view edits). */
  otherErrors: string[];
}

function parseScalar(s: Scalar, raw: string): { value: unknown } | { error: string } {
  if (raw.length > (s.kind === 'lines' ? MAX_LINES_FIELD : MAX_FIELD)) return { error: `${s.name}: too long` };
  switch (s.kind) {
    case 'choice':
      return s.options.includes(raw) ? { value: raw } : { error: `${s.name}: must be one of ${s.options.join(', ')}` };
    case 'int': {
      const t = raw.trim();
      // Digits only: "1e3", "0x10", " 5 " typed by hand are refused here, not coerced.
      if (!/^\d{1,9}$/.test(t)) return { error: `${s.name}: must be a whole number` };
      return { value: Number(t) };
    }
    case 'bool':
      return raw === 'true' ? { value: true } : raw === 'false' ? { value: false } : { error: `${s.name}: must be true or false` };
    case 'lines':
      return {
        value: raw
          .split(/\r?\n/)
          .map((l) => l.trim())
          .filter((l) => l !== ''),
      };
  }
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function addError(m: Map<string, string[]>, k: string, e: string): void {
  const l = m.get(k);
  if (l) l.push(e);
  else m.set(k, [e]);
}

/** A registration id for a new row: not one in use. */
function newRegistrationId(vendorId: string, productId: string, taken: ReadonlySet<string>): string {
  const base = `media-${vendorId}-${productId}`.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 50);
  for (let i = 1; i < 100_000; i++) if (!taken.has(`${base}-${i}`)) return `${base}-${i}`;
  return `${base}-${taken.size + 1}`;
}

/**
 * Applies a submitted form to `base` (the body in force, including whatever this form does not
 * know) and validates the result with the policy's own validator.
 */
export function applyForm(base: Obj, get: FormGet): FormResult {
  const body = structuredClone(base);
  const parseErrors: string[] = [];
  for (const s of SCALARS) {
    const raw = get(s.name);
    if (raw === null) continue; // not in this form: unchanged
    const p = parseScalar(s, raw);
    if ('error' in p) {
      parseErrors.push(p.error);
      continue;
    }
    const before = getPath(body, s.name);
    // An absent optional member stays absent unless the administrator changed what it means.
    if (before === undefined && same(p.value, defaultAt(s.name))) continue;
    if (same(before, p.value)) continue; // keeps key order and the exact stored value
    if (!setPath(body, s.name, p.value)) parseErrors.push(`${s.name}: its section is not an object (edit it in the JSON view)`);
  }

  const usb = body.usb;
  const regOrigin: (number | typeof NEW_ROW)[] = [];
  if (isObj(usb)) {
    if (Array.isArray(usb.classRules))
      usb.classRules = usb.classRules.map((r: unknown, i: number) => {
        const raw = get(`usb.classRules[${i}].verdict`);
        if (raw === null || !isObj(r) || r.verdict === raw) return r;
        if (!classChoices(r).includes(raw)) {
          parseErrors.push(`usb.classRules[${i}].verdict: must be one of ${classChoices(r).join(', ')}`);
          return r;
        }
        return { ...r, verdict: raw };
      });
    if (Array.isArray(usb.models))
      usb.models = usb.models.map((m: unknown, i: number) => {
        const raw = get(`usb.models[${i}].enabled`);
        if (raw === null || !isObj(m)) return m;
        if (raw !== 'true' && raw !== 'false') {
          parseErrors.push(`usb.models[${i}].enabled: must be true or false`);
          return m;
        }
        return m.enabled === (raw === 'true') ? m : { ...m, enabled: raw === 'true' };
      });
    if (Array.isArray(usb.registered)) {
      const kept: unknown[] = [];
      usb.registered.forEach((r: unknown, i: number) => {
        const f = (k: string) => get(`usb.registered[${i}].${k}`);
        if (f('remove') === 'true') return;
        regOrigin.push(i);
        if (!isObj(r)) return void kept.push(r);
        let next: Obj = r;
        const access = f('access');
        if (access !== null && access !== r.access) {
          if (access === 'allow' || access === 'readonly') next = { ...next, access };
          else parseErrors.push(`usb.registered[${i}].access: must be one of allow, readonly`);
        }
        const label = f('label');
        if (label !== null) {
          const t = label.trim();
          if (t.length > MAX_FIELD) parseErrors.push(`usb.registered[${i}].label: too long`);
          else if (t === '' && next.label !== undefined) {
            const { label: _drop, ...rest } = next;
            next = rest;
          } else if (t !== '' && t !== next.label) next = { ...next, label: t };
        }
        kept.push(next);
      });
      const n = (k: string) => (get(`usb.registered[${NEW_ROW}].${k}`) ?? '').slice(0, MAX_FIELD + 1);
      const vendorId = n('vendorId').trim().toLowerCase();
      const productId = n('productId').trim().toLowerCase();
      const serial = n('serial').trim();
      if (vendorId || productId || serial) {
        const taken = new Set(kept.map((r) => (isObj(r) && typeof r.id === 'string' ? r.id : '')));
        const access = n('access') || 'readonly';
        const label = n('label').trim();
        kept.push({ id: newRegistrationId(vendorId, productId, taken), vendorId, productId, serial, access, ...(label ? { label } : {}) });
        regOrigin.push(NEW_ROW);
      }
      usb.registered = kept;
    }
  }

  const fieldErrors = new Map<string, string[]>();
  const otherErrors: string[] = [];
  const names = fieldNames(base);
  const translate = (path: string) =>
    path.replace(/^usb\.registered\[(\d+)\]/, (m, k: string) => {
      const o = regOrigin[Number(k)];
      return o === undefined ? m : `usb.registered[${o}]`;
    });
  // Parse errors name rows as shown; the validator's name them as they are in the new body.
  const all = [...parseErrors.map((x) => ({ e: `policy.${x}`, shownRows: true })), ...policyBodyErrors(body).map((e) => ({ e, shownRows: false }))];
  for (const { e, shownRows } of all) {
    const m = /^policy\.([^:]*):/.exec(e);
    const field = m ? fieldFor(names, shownRows ? m[1]! : translate(m[1]!)) : null;
    if (field) addError(fieldErrors, field, e);
    else otherErrors.push(e);
  }
  return { body, fieldErrors, otherErrors };
}

/**
 * The field an error path belongs to: the field itself or the longest field the path lies
 * under (`usb.locations[3]` → `software.locations`), else the first field under the path (an
 * error about a whole registered row goes to its first field).
 */
export function fieldFor(names: readonly string[], path: string): string | null {
  let best: string | null = null;
  for (const n of names) {
    if (path === n || path.startsWith(n + '.') || path.startsWith(n + '[')) if (!best || n.length > best.length) best = n;
  }
  if (best) return best;
  return names.find((n) => n.startsWith(path + '.') || n.startsWith(path + '[')) ?? null;
}

/** A validator or parser message for people, Japanese first; unknown shapes are shown as written. */
export function errorText(raw: string, lang: Lang): string {
  const msg = raw.replace(/^[^:]*:\s*/, '');
  const ja: [RegExp, (m: RegExpExecArray) => string][] = [
    [/^must be an integer from (\d+) to (\d+)$/, (m) => `${m[1]}〜${m[2]} の整数を入力してください。`],
    [/^must be a whole number$/, () => '数字だけで入力してください。'],
    [/^must be one of (.+)$/, (m) => `選択肢 (${m[1]}) から選んでください。`],
    [/^must be four lowercase hex digits$/, () => '16進数4桁で入力してください(例: 0781)。'],
    [/^must be a non-empty serial number$/, () => 'シリアル番号を入力してください。'],
    [/^must be a clean absolute path/, () => '絶対パスで入力してください(/ だけ、末尾の /、. や .. は使えません)。'],
    [/^duplicate /, () => '同じ値がすでにあります。'],
    [/^must be a string$|^too long$/, () => '長すぎます(200文字以内)。'],
    [/^must be true or false$/, () => 'はい/いいえで選んでください。'],
    [/^its section is not an object/, () => 'この項目の区画が壊れています。JSON表示で修正してください。'],
  ];
  const en: [RegExp, (m: RegExpExecArray) => string][] = [
    [/^must be an integer from (\d+) to (\d+)$/, (m) => `Enter a whole number from ${m[1]} to ${m[2]}.`],
    [/^must be a whole number$/, () => 'Enter digits only.'],
    [/^must be four lowercase hex digits$/, () => 'Enter 4 hex digits (e.g. 0781).'],
    [/^must be a non-empty serial number$/, () => 'Enter the serial number.'],
    [/^must be a string$|^too long$/, () => 'Too long (at most 200 characters).'],
  ];
  for (const [re, f] of lang === 'en' ? en : ja) {
    const m = re.exec(msg);
    if (m) return f(m);
  }
  return msg;
}
