/**
 * The notice at the terminal (issue 15): what the logged-in member of staff is told when the agent
 * blocks a device or stops a program, and when their application for an exception is sent,
 * approved or rejected. The agent builds a Notice and hands it to ctx.notify?.(notice); the
 * notifier (agent/notify/) decides who sees it and when, and a platform delivers it (Linux: the
 * user's session bus, org.freedesktop.Notifications; Windows: the active console session).
 *
 * Display text (subject, reason) comes from attackers — a USB product string can hold markup,
 * newlines, bidi controls or 10 kB — and many notification daemons interpret the body as markup
 * (the spec's `body-markup` capability). noticeText() therefore returns text that is inert both
 * with and without markup: controls and invisible format characters become spaces, the three
 * markup characters become their full-width forms (readable, never a tag or entity), lengths are
 * bounded.
 */
import { createHash } from 'node:crypto';
import { isObject, unknownKeys } from './validate.js';

export type NoticeKind =
  | 'usb_blocked'
  | 'usb_readonly'
  | 'software_stopped'
  | 'software_reported'
  | 'application_sent'
  | 'application_approved'
  | 'application_rejected';

export const NOTICE_KINDS: readonly NoticeKind[] = [
  'usb_blocked',
  'usb_readonly',
  'software_stopped',
  'software_reported',
  'application_sent',
  'application_approved',
  'application_rejected',
];

export interface Notice {
  kind: NoticeKind;
  /** Account name of the logged-in user the notice is for; '' = whoever is logged in at the terminal. */
  user: string;
  /** The device or program as the user knows it (display text, attacker-controlled). */
  subject: string;
  /** 申請番号: the short reference the user types to apply (`sekimori-agent apply <ref>`). */
  ref?: string;
  /** ISO time until which an approved exception runs (application_approved). */
  until?: string;
  /** Free text: the approver's comment (application_rejected). Attacker-controlled. */
  reason?: string;
  /**
   * One notice per key: the notifier shows a key once (e.g. one device on one plug:
   * `usb|<port>|<busnum>|<devnum>`). Without a key every notice is shown.
   */
  key?: string;
  /** Monitor mode: nothing was actually stopped; the text says what would have happened. */
  monitor?: boolean;
}

/** The apply command the notice names (built by the application part: agent/usb/apply.ts). */
export const APPLY_COMMAND = 'sekimori-agent apply';

/** Bounds for display text inside a notice (characters, after cleaning). */
export const NOTICE_SUBJECT_MAX = 80;
export const NOTICE_REASON_MAX = 160;

const REF_RE = /^[A-Za-z0-9-]{1,16}$/;

/**
 * Cleans attacker-controlled display text for a notification: inert whether or not the daemon
 * interprets markup, one line, bounded. Controls (C0, C1, DEL), line/paragraph separators and
 * invisible format characters (bidi overrides and isolates, zero-width, BOM, soft hyphen, tags)
 * become spaces; & < > become ＆ ＜ ＞; runs of spaces collapse.
 */
export function noticeSafe(raw: string | null | undefined, max: number): string {
  if (raw === null || raw === undefined) return '';
  const text = String(raw)
    .slice(0, max * 8) // bound the work before scanning a 10 MB string
    .toWellFormed()
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]|[\u{e0000}-\u{e007f}]/gu, ' ')
    .replace(/&/g, '＆')
    .replace(/</g, '＜')
    .replace(/>/g, '＞')
    .replace(/\s+/g, ' ')
    .trim();
  const chars = Array.from(text);
  return chars.length <= max ? text : chars.slice(0, max - 1).join('') + '…';
}

/** A reference is shown only when it has the shape of one (never free text in a command line). */
function refOf(n: Notice): string | null {
  return typeof n.ref === 'string' && REF_RE.test(n.ref) ? n.ref : null;
}

/** 'YYYY-MM-DD HH:MM' in the terminal's local time, or null for a time that is not one. */
function untilOf(n: Notice): string | null {
  if (typeof n.until !== 'string') return null;
  const t = Date.parse(n.until);
  if (!Number.isFinite(t)) return null;
  const d = new Date(t);
  const p = (x: number) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/**
 * The notification's summary (title) and body, Japanese or English. The body is plain text that
 * is also inert as markup; the summary is fixed text per kind (no attacker text in the title).
 */
export function noticeText(n: Notice, lang: 'ja' | 'en'): { summary: string; body: string } {
  const ja = lang !== 'en';
  const fallback = ja ? '(名称不明)' : '(unnamed)';
  const subject = noticeSafe(n.subject, NOTICE_SUBJECT_MAX) || fallback;
  const reason = noticeSafe(n.reason, NOTICE_REASON_MAX);
  const ref = refOf(n);
  const until = untilOf(n);
  const q = (s: string) => (ja ? `「${s}」` : `"${s}"`);
  const apply = ref
    ? ja
      ? `業務で必要な場合は、次のコマンドで一時許可を申請できます:\n${APPLY_COMMAND} ${ref}`
      : `If you need it for your work, apply for a temporary exception with:\n${APPLY_COMMAND} ${ref}`
    : ja
      ? '業務で必要な場合は、情報システム管理者に連絡してください。'
      : 'If you need it for your work, contact your IT administrator.';
  const mon = n.monitor === true;
  switch (n.kind) {
    case 'usb_blocked':
      return ja
        ? {
            summary: mon ? '外部記録媒体（監視モード）' : '外部記録媒体を遮断しました',
            body: mon
              ? `${q(subject)} は情報持ち出し不可の対象です。監視モードのため今回は使用できますが、記録されました。\n${apply}`
              : `${q(subject)} は情報持ち出し不可のため使用できません。\n${apply}`,
          }
        : {
            summary: mon ? 'Removable media (monitor mode)' : 'Removable media blocked',
            body: mon
              ? `${q(subject)} is not allowed (no data export from this terminal). Monitor mode lets it work this time; it has been recorded.\n${apply}`
              : `${q(subject)} cannot be used: no data export from this terminal.\n${apply}`,
          };
    case 'usb_readonly':
      return ja
        ? { summary: '外部記録媒体を読み取り専用にしました', body: `${q(subject)} は読み取り専用で使用できます（情報持ち出し不可）。書き込みはできません。\n${apply}` }
        : { summary: 'Removable media is read-only', body: `${q(subject)} can be read but not written (no data export from this terminal).\n${apply}` };
    case 'software_stopped':
      return ja
        ? {
            summary: mon ? '無許可ソフトウェア（監視モード）' : '無許可ソフトウェアを停止しました',
            body: mon
              ? `${q(subject)} は許可リストにないソフトウェアです（無許可ソフトウェア）。監視モードのため停止していませんが、記録されました。\n${apply}`
              : `${q(subject)} は許可リストにないため停止しました（無許可ソフトウェア）。\n${apply}`,
          }
        : {
            summary: mon ? 'Unauthorized software (monitor mode)' : 'Unauthorized software stopped',
            body: mon
              ? `${q(subject)} is not on the allowlist (unauthorized software). Monitor mode did not stop it; it has been recorded.\n${apply}`
              : `${q(subject)} was stopped: it is not on the allowlist (unauthorized software).\n${apply}`,
          };
    case 'software_reported':
      return ja
        ? { summary: '無許可ソフトウェアを検出しました', body: `${q(subject)} は許可リストにありません（無許可ソフトウェア）。情報システム管理者に報告されました。\n${apply}` }
        : { summary: 'Unauthorized software detected', body: `${q(subject)} is not on the allowlist (unauthorized software). It has been reported to your IT administrator.\n${apply}` };
    case 'application_sent':
      return ja
        ? { summary: '一時許可を申請しました', body: `${q(subject)} の一時許可を申請しました${ref ? `（申請番号 ${ref}）` : ''}。承認されるとお知らせします。` }
        : { summary: 'Application sent', body: `Your application for ${q(subject)} has been sent${ref ? ` (reference ${ref})` : ''}. You will be told when it is decided.` };
    case 'application_approved':
      return ja
        ? {
            summary: '申請が承認されました',
            body: `${q(subject)} の一時許可が承認されました${ref ? `（申請番号 ${ref}）` : ''}。${until ? `${until} まで使用できます。` : ''}機器を接続し直してください。`,
          }
        : {
            summary: 'Application approved',
            body: `Your application for ${q(subject)} was approved${ref ? ` (reference ${ref})` : ''}.${until ? ` You may use it until ${until}.` : ''} Plug the device in again.`,
          };
    case 'application_rejected':
      return ja
        ? { summary: '申請は承認されませんでした', body: `${q(subject)} の一時許可の申請は却下されました${ref ? `（申請番号 ${ref}）` : ''}。${reason ? `\n理由: ${reason}` : ''}` }
        : { summary: 'Application rejected', body: `Your application for ${q(subject)} was rejected${ref ? ` (reference ${ref})` : ''}.${reason ? `\nReason: ${reason}` : ''}` };
  }
}

/**
 * A short reference derived from a seed (e.g. the blocked event's id): 6 characters of Crockford
 * base32 (no I, L, O, U: easy to read aloud and type). Callers may use their own references;
 * noticeText shows any [A-Za-z0-9-]{1,16}.
 */
export function noticeRef(seed: string): string {
  const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  const h = createHash('sha256').update(seed).digest();
  let out = '';
  for (let i = 0; i < 6; i++) out += alphabet[h[i]! & 31];
  return out;
}

/** Policy option `agent.notices` (optional: policies without it keep the defaults). */
export interface NoticeSettings {
  /** Show notices at all (default true). */
  enabled: boolean;
  /** Also show them in monitor mode, where nothing is stopped (default false). */
  monitor: boolean;
}

export function defaultNoticeSettings(): NoticeSettings {
  return { enabled: true, monitor: false };
}

/** The settings in force for a policy's `agent.notices` (absent → defaults). */
export function noticeSettingsOf(x: { notices?: Partial<NoticeSettings> } | undefined): NoticeSettings {
  const d = defaultNoticeSettings();
  const n = x?.notices;
  return { enabled: typeof n?.enabled === 'boolean' ? n.enabled : d.enabled, monitor: typeof n?.monitor === 'boolean' ? n.monitor : d.monitor };
}

/** Validator for `agent.notices`: unknown keys are errors, every message names its path. */
export function noticeSettingsErrors(x: unknown, path: string): string[] {
  if (x === undefined) return [];
  if (!isObject(x)) return [`${path}: must be an object`];
  const errors = unknownKeys(x, ['enabled', 'monitor'], path);
  for (const k of ['enabled', 'monitor'] as const) {
    if (k in x && typeof x[k] !== 'boolean') errors.push(`${path}.${k}: must be true or false`);
  }
  return errors;
}
