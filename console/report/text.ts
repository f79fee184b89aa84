/** Words of the 自己点検レポート and the evidence export: Japanese first, English available. */
import type { ItemId } from './items.js';

type Lang = 'ja' | 'en';
type Pair = readonly [string, string];

const ITEMS: Record<ItemId, { title: Pair; question: Pair }> = {
  export: {
    title: ['情報持ち出し不可設定', 'No data export from terminals'],
    question: ['外部記録媒体(記憶装置・スマートフォン・USBネットワーク)が遮断され、最新のポリシーで強制されているか', 'Removable storage, phones and USB network adapters are blocked, enforced under the current policy'],
  },
  mfa: {
    title: ['多要素認証(ログイン・画面ロック解除)', 'Multi-factor authentication (login and unlock)'],
    question: ['パスワードだけで利用できる経路がなく、各端末で多要素認証が使われているか', 'No password-only path, and MFA is in use on every terminal'],
  },
  screenLock: {
    title: ['画面ロック', 'Screen lock'],
    question: ['一定時間操作がないとき画面がロックされるか(端末の状態報告による)', 'The screen locks after the idle time (from the terminal posture report)'],
  },
  software: {
    title: ['無許可ソフトウェア対策', 'Unauthorized software'],
    question: ['強制モードで運用され、検知した無許可ソフトウェアがすべて停止されたか', 'Enforce mode, and every unauthorized program seen was stopped'],
  },
  exceptions: {
    title: ['例外措置(一時許可)', 'Exceptions (temporary permissions)'],
    question: ['すべての一時許可に申請者・別の承認者・期間・理由があり、書き出したファイルが記録されているか', 'Every exception has an applicant, a different approver, a period and a reason, and files written are recorded'],
  },
  logs: {
    title: ['ログの取得と完全性', 'Log collection and integrity'],
    question: ['全端末から操作ログが届き、ハッシュチェーンに欠落・改ざんがなく、応答なしの端末がないか', 'Every terminal reports, its hash chain has no gap or tampering, and none went silent'],
  },
  policy: {
    title: ['ポリシー管理', 'Policy management'],
    question: ['すべての版が署名・検証でき、変更者が記録され、全端末が最新版を適用しているか', 'Every version is signed and verifiable, who changed it is recorded, and every terminal applies the current one'],
  },
};

const REASONS: Record<string, Pair> = {
  no_posture: ['端末の状態報告なし', 'no posture report'],
  posture_stale: ['端末の状態報告が古い(72時間以上前)', 'posture report older than 72 hours'],
  posture_missing: ['状態報告に項目なし', 'not in the posture report'],
  posture_off: ['状態報告で不適合', 'failing in the posture report'],
  monitor_only: ['監視のみモード(遮断しない)', 'monitor-only (nothing blocked)'],
  policy_outdated: ['最新のポリシーを未適用', 'current policy not applied'],
  policy_usb_monitor: ['ポリシーのUSB制御が監視モード', 'policy: USB in monitor mode'],
  policy_usb_default_allow: ['ポリシーの既定がUSB許可', 'policy: USB allowed by default'],
  policy_usb_class_allowed: ['ポリシーが持ち出し可能な機器クラスを許可', 'policy allows an export-capable device class'],
  policy_mfa_break_glass: ['ポリシーがパスワードのみの緊急ログインを許可', 'policy allows password-only break-glass login'],
  no_mfa_in_period: ['期間中に多要素認証の記録なし', 'no MFA verification in the period'],
  policy_software_monitor: ['ポリシーのソフトウェア制御が監視モード', 'policy: software in monitor mode'],
  unauthorized_not_stopped: ['無許可ソフトウェアを停止していない', 'unauthorized software not stopped'],
  exception_no_request: ['申請なしの一時許可', 'exception without a request'],
  exception_self_approved: ['申請者と承認者が同じ', 'applicant approved their own request'],
  exception_no_reason: ['理由の記載なし', 'no reason given'],
  exception_too_long: ['31日を超える一時許可', 'exception longer than 31 days'],
  exception_files_unhashed: ['書き出したファイルのハッシュなし', 'files written without a hash'],
  no_events_in_period: ['期間中の操作ログなし', 'no events in the period'],
  chain_gap: ['ハッシュチェーンの欠落', 'hash-chain gap'],
  events_dropped_accounted: ['未送信上限による破棄(破棄記録で説明済み)', 'events dropped at the outbox cap (accounted for by the drop record)'],
  chain_broken: ['ハッシュチェーンの不整合', 'hash chain broken'],
  chain_tampered: ['改ざんの疑い', 'suspected tampering'],
  status_offline: ['現在オフライン', 'offline now'],
  status_silent: ['現在応答なし', 'silent now'],
  silent_in_period: ['期間中に応答なし', 'went silent in the period'],
  policy_signature_bad: ['署名を検証できない版', 'a version whose signature does not verify'],
  policy_none: ['ポリシーなし', 'no policy'],
};

const WORDS = {
  checklist: ['点検項目', 'Checklist'],
  item: ['項目', 'Item'],
  verdict: ['判定', 'Verdict'],
  coverage: ['適合端末', 'Compliant terminals'],
  compliant: ['適合', 'Compliant'],
  noncompliant: ['不適合', 'Not compliant'],
  offenders: ['不適合の端末', 'Non-compliant terminals'],
  reasons: ['理由', 'Reasons'],
  fleetReasons: ['全端末に共通', 'For every terminal'],
  evidenceLinks: ['操作ログ', 'Operation log'],
  noPostureSource: ['この管理コンソールには端末の状態報告(ポスチャ)の機能がないため、画面ロックは確認できません。', 'This console has no terminal posture reports: the screen lock cannot be verified.'],
  postureBasis: ['判定は、ポリシー・操作ログと各端末の最新の状態報告(ポスチャ)によります。報告のない端末は不適合です。', 'Judged from the policy, the operation log and each terminal’s latest posture report; a terminal without one is not compliant.'],
  exceptionList: ['一時許可の一覧', 'Exceptions'],
  applicant: ['申請者', 'Applicant'],
  staffUser: ['対象職員', 'Staff member'],
  approver: ['承認者', 'Approver'],
  device: ['機器', 'Device'],
  periodCol: ['期間', 'Period'],
  reason: ['理由', 'Reason'],
  filesWritten: ['書き出したファイル', 'Files written'],
  path: ['パス', 'Path'],
  size: ['サイズ', 'Size'],
  noRequest: ['(申請なし)', '(no request)'],
  policyVersions: ['ポリシーの版', 'Policy versions'],
  signature: ['署名', 'Signature'],
  signatureOk: ['検証済み', 'verified'],
  signatureBad: ['検証できない', 'does not verify'],
  chainHeads: ['ハッシュチェーン', 'Hash chains'],
  events: ['件数', 'Events'],
  head: ['先頭', 'Head'],
  evidenceExport: ['証跡の書き出し(署名付き)', 'Evidence export (signed)'],
  evidenceHelp: ['書き出したファイルは sekimori-console evidence verify ファイル名 でオフラインで検証できます。', 'Verify the file offline with: sekimori-console evidence verify FILE'],
  linkBlocked: ['遮断の記録', 'Blocked devices'],
  linkFilesWritten: ['持ち出しログ', 'Files written'],
  linkExportsPage: ['持ち出しログ(一覧・検索)', 'Export log (list and search)'],
  linkMfa: ['多要素認証の記録', 'MFA events'],
  linkMfaFailure: ['認証失敗', 'MFA failures'],
  linkAgent: ['端末エージェントの記録', 'Agent events'],
  linkSoftware: ['ソフトウェアの記録', 'Software events'],
  linkUnauthorized: ['無許可プロセス', 'Unauthorized processes'],
  linkExceptions: ['一時許可の付与', 'Exceptions granted'],
  linkExceptionUsed: ['一時許可の使用', 'Exceptions used'],
  linkSilent: ['応答なしの警告', 'Silent alerts'],
  linkGap: ['欠落の検出', 'Gaps detected'],
  linkChainBroken: ['チェーン不整合', 'Chain broken'],
  linkPolicyChanges: ['ポリシーの公開', 'Policies published'],
  linkPolicyRejected: ['ポリシーの拒否', 'Policies rejected'],
  linkPolicyDiffs: ['ポリシーの変更内容(変更者・差分)', 'Policy changes (who, diff)'],
  terminal: ['端末', 'Terminal'],
  terminalEvents: ['この端末の操作ログ', "This terminal's events"],
} as const satisfies Record<string, Pair>;

export type WordKey = keyof typeof WORDS;

const pick = (p: Pair, lang: Lang): string => p[lang === 'en' ? 1 : 0];

export function word(lang: Lang, key: WordKey): string {
  return pick(WORDS[key], lang);
}

/** Link labels come from items.ts as plain strings; unknown ones are shown as they are. */
export function label(lang: Lang, key: string): string {
  return key in WORDS ? pick(WORDS[key as WordKey], lang) : key;
}

export function itemTitle(lang: Lang, id: ItemId): string {
  return pick(ITEMS[id].title, lang);
}

export function itemQuestion(lang: Lang, id: ItemId): string {
  return pick(ITEMS[id].question, lang);
}

/**
 * A reason code from items.ts: `code`, `code:detail` (detail shown after the words) or
 * `code@exceptionId`. Unknown codes are shown as the code itself (never dropped).
 */
const CONTROLS: Record<string, Pair> = {
  usb_enforced: ['USB制御', 'USB enforcement'],
  usb_boot_hold: ['起動時のUSB遮断', 'boot-time USB hold'],
  usb_readonly_rule: ['読み取り専用ルール', 'read-only rule'],
  mfa_pam_services: ['ログイン・画面ロック解除の多要素認証', 'MFA at login and unlock'],
  mfa_enrolment: ['多要素認証の未登録アカウント', 'accounts without MFA enrolment'],
  screen_lock: ['画面ロック', 'screen lock'],
  software_enforcement: ['ソフトウェア制御', 'software enforcement'],
  agent_health: ['エージェントの状態(版・時刻・未送信)', 'agent health (versions, clock, outbox)'],
};

export function reasonText(lang: Lang, code: string): string {
  const [base, at] = code.split('@', 2) as [string, string | undefined];
  const suffix = at ? ` (${at})` : '';
  if (REASONS[base]) return pick(REASONS[base], lang) + suffix;
  const i = base.indexOf(':');
  if (i > 0 && REASONS[base.slice(0, i)]) {
    const detail = base.slice(i + 1);
    return `${pick(REASONS[base.slice(0, i)]!, lang)}: ${CONTROLS[detail] ? pick(CONTROLS[detail], lang) : detail}${suffix}`;
  }
  return code;
}
