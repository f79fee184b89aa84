/**
 * Events people can read: a one-line sentence per event (Japanese first, English available), the
 * name of every event type, and labels for data fields. Shared by the console (操作ログ, detail,
 * report, CSV) and the agent (notices), so it lives in protocol/ and stays pure: no I/O, no clock.
 *
 * Data is read only through readEventData (the declaration in event-data.ts); data that does not
 * match its declaration still gets a sentence (the fallback) and nothing here ever throws.
 * Every value taken from data is attacker-chosen display text: it goes through safeText (controls
 * made visible, length bounded); HTML escaping and CSV neutralising stay the renderers' job.
 *
 * A NEW EVENT TYPE needs an entry in EVENT_TEXT below (name + sentence, both languages);
 * test/protocol/event-text.test.ts enumerates the catalogue and fails for a type without one.
 */
import { isUsbDeviceData, readEventData, type EventDataOf } from './event-data.js';
import type { EventType } from './events.js';
import { safeText } from './text.js';

export type TextLang = 'ja' | 'en';
type Pair = readonly [ja: string, en: string];

/** What a sentence is built from (a stored event, or an event about to be sent). */
export interface DescribableEvent {
  type: string;
  user?: string | null | undefined;
  data: unknown;
}

export interface DescribeOptions {
  /** Display name of the terminal the event is from; 'console' (or absent) for the console's own events. */
  terminal?: string | null | undefined;
}

/** Upper bound of a sentence (characters): long enough for a device and a path, short enough for one table row. */
export const SENTENCE_MAX = 300;
/** How much of one attacker-chosen value a sentence shows (the detail table shows more). */
const PART = 64;
const PATH_PART = 120;

const s = (v: unknown, n = PART): string => (typeof v === 'string' ? safeText(v, n) : typeof v === 'number' && Number.isFinite(v) ? String(v) : '');
const q = (v: unknown, n = PART): string => {
  const t = s(v, n);
  return t === '' ? '-' : t;
};

/** A USB serial in a sentence: the first characters only (the table shows it whole). */
function shortSerial(v: unknown): string {
  const t = s(v, 40);
  const chars = Array.from(t.replace(/…$/, ''));
  return chars.length > 8 ? chars.slice(0, 8).join('') + '…' : t;
}

/** What kind of device the interface classes say it is (the most data-carrying class wins). */
const DEVICE_KINDS: readonly [classes: readonly string[], name: Pair][] = [
  [['08'], ['USBメモリ', 'USB storage']],
  [['06'], ['スマートフォン・カメラ', 'phone/camera']],
  [['02', '0a', 'e0', 'ef'], ['通信機器', 'network/communication device']],
  [['0e'], ['ビデオ機器', 'video device']],
  [['07'], ['プリンター', 'printer']],
  [['01'], ['オーディオ機器', 'audio device']],
  [['0b'], ['ICカードリーダー', 'smart-card reader']],
  [['03'], ['キーボード・マウス', 'keyboard/mouse']],
  [['09'], ['USBハブ', 'USB hub']],
];

function deviceKind(classes: readonly string[], L: TextLang): string {
  const lower = new Set(classes.map((c) => c.toLowerCase()));
  for (const [cs, name] of DEVICE_KINDS) if (cs.some((c) => lower.has(c))) return pick(name, L);
  return L === 'ja' ? 'USB機器' : 'USB device';
}

const pick = (p: Pair, L: TextLang): string => (L === 'ja' ? p[0] : p[1]);

type Say = (d: never, L: TextLang, u: string) => string;
interface TypeText {
  name: Pair;
  /** The sentence from the declared data; `u` is the user's display text ('' when none). */
  say: Say;
}

/** One entry per type: typed through EventDataOf so a renamed field is a compile error here. */
function entry<T extends EventType>(_type: T, name: Pair, say: (d: EventDataOf<T>, L: TextLang, u: string) => string): TypeText {
  return { name, say: say as Say };
}

const J = (L: TextLang, ja: string, en: string): string => (L === 'ja' ? ja : en);
/** "山田 が " / "yamada " — the subject when there is one. */
const ga = (u: string, L: TextLang): string => (u ? (L === 'ja' ? `${u} が ` : `${u} `) : '');
const forU = (u: string, L: TextLang): string => (u ? (L === 'ja' ? `${u} の` : ` for ${u}`) : '');

// ---- usb ---------------------------------------------------------------------------------------

type UsbData = EventDataOf<'usb.blocked'>;
const USB_VERDICT: Record<string, Pair> = {
  'usb.blocked': ['遮断しました', 'blocked'],
  'usb.allowed': ['許可しました', 'allowed'],
  'usb.readonly': ['読み取り専用で許可しました', 'allowed read-only'],
  'usb.exception_used': ['一時許可により許可しました', 'allowed by a temporary exception'],
  'usb.would_block': ['監視モードのため許可しました(通常は遮断)', 'allowed in monitor mode (would be blocked)'],
};

function usbSay(type: keyof typeof USB_VERDICT) {
  return (d: UsbData, L: TextLang, u: string): string => {
    const verdict = pick(USB_VERDICT[type]!, L);
    if (!isUsbDeviceData(d)) {
      const what = d.kind === 'optical' ? J(L, '光学ドライブ(CD/DVD)', 'optical drive (CD/DVD)') : J(L, 'SDカード', 'SD card');
      return J(L, `${what} ${q(d.device)} — ${verdict}`, `${what} ${q(d.device)} — ${verdict}`);
    }
    const kind = deviceKind(d.interfaceClasses, L);
    const name = [s(d.manufacturer), s(d.product)].filter(Boolean).join(' ') || `${d.vendorId}:${d.productId}`;
    const serial = shortSerial(d.serial);
    const ser = serial ? J(L, ` (シリアル ${serial})`, ` (serial ${serial})`) : '';
    const partial = d.partial ? J(L, '(一部のインターフェースのみ)', ' (some interfaces only)') : '';
    return J(L, `${ga(u, L)}${kind} ${name}${ser} を接続 — ${verdict}${partial}`, `${u ? u + ' plugged in' : 'Plugged in'} ${kind} ${name}${ser} — ${verdict}${partial}`);
  };
}

// ---- the catalogue's texts ---------------------------------------------------------------------

const acted = (action: unknown, L: TextLang, what: Pair): string => (action === 'none' || action === '' ? J(L, '記録のみ', 'reported only') : pick(what, L));
const v = (n: unknown): string => (typeof n === 'number' && Number.isFinite(n) ? `v${n}` : 'v?');

export const EVENT_TEXT: Record<string, TypeText> = {
  'usb.blocked': entry('usb.blocked', ['USB機器の遮断', 'USB device blocked'], usbSay('usb.blocked')),
  'usb.allowed': entry('usb.allowed', ['USB機器の許可', 'USB device allowed'], usbSay('usb.allowed')),
  'usb.readonly': entry('usb.readonly', ['USB機器の読み取り専用許可', 'USB device read-only'], usbSay('usb.readonly')),
  'usb.exception_used': entry('usb.exception_used', ['一時許可の使用', 'Temporary exception used'], usbSay('usb.exception_used')),
  'usb.would_block': entry('usb.would_block', ['USB機器(監視モード・通常は遮断)', 'USB device (monitor mode, would block)'], usbSay('usb.would_block')),
  'usb.enforced_stricter': entry('usb.enforced_stricter', ['ポリシーをより厳しく適用', 'Policy enforced more strictly'], (d, L) =>
    J(L, `ポリシー ${v(d.policyVersion)} の一部を ${q(d.platform, 32)} では正確に表現できないため、より厳しく適用しました(${d.notes.length}件)`, `Parts of policy ${v(d.policyVersion)} cannot be expressed exactly on ${q(d.platform, 32)}: enforced more strictly (${d.notes.length})`),
  ),
  // 持ち出しログ (issue 16, agent/usb/filelog)
  'usb.file_written': entry('usb.file_written', ['媒体へのファイル書き込み', 'File written to a medium'], (d, L, u) =>
    J(
      L,
      `${ga(u, L)}${q(d.device.label)} (シリアル ${shortSerial(d.device.serial) || '-'}) に ${q(d.path, PATH_PART)} (${s(d.size)} バイト) を書き込みました`,
      `${u ? u + ' wrote' : 'Written:'} ${q(d.path, PATH_PART)} (${s(d.size)} bytes) to ${q(d.device.label)} (serial ${shortSerial(d.device.serial) || '-'})`,
    ),
  ),
  'usb.file_log_overflow': entry('usb.file_log_overflow', ['持ち出しログの記録漏れ', 'Export log overflow'], (d, L) =>
    J(L, `媒体への書き込み ${s(d.count)} 件を個別に記録できませんでした(${q(d.reason, 32)})`, `${s(d.count)} writes to media could not be recorded one by one (${q(d.reason, 32)})`),
  ),
  'usb.file_log_unavailable': entry('usb.file_log_unavailable', ['持ち出しログ記録不可', 'Export log unavailable'], (d, L) =>
    J(L, `${d.device ? q(d.device.label) + ' への' : ''}書き込みを記録できません: ${q(d.reason, 120)}`, `Writes${d.device ? ' to ' + q(d.device.label) : ''} cannot be recorded: ${q(d.reason, 120)}`),
  ),

  'mfa.success': entry('mfa.success', ['多要素認証の成功', 'MFA success'], (d, L, u) =>
    J(L, `${forU(u, L)}多要素認証に成功しました${d.offline ? '(オフライン)' : ''}`, `MFA succeeded${forU(u, L)}${d.offline ? ' (offline)' : ''}`),
  ),
  'mfa.failure': entry('mfa.failure', ['多要素認証の失敗', 'MFA failure'], (d, L, u) =>
    J(L, `${forU(u, L)}多要素認証に失敗しました(理由 ${q(d.reason)})`, `MFA failed${forU(u, L)} (reason ${q(d.reason)})`),
  ),
  'mfa.locked': entry('mfa.locked', ['多要素認証のロック', 'MFA locked'], (_d, L, u) =>
    J(L, `認証の失敗が続いたため ${u || '利用者'} をロックしました`, `${u || 'The user'} was locked after repeated failures`),
  ),
  'mfa.replay': entry('mfa.replay', ['認証コードの再使用', 'Code replay'], (_d, L, u) =>
    J(L, `${forU(u, L)}使用済みの認証コードを拒否しました(再使用)`, `A used verification code was refused${forU(u, L)} (replay)`),
  ),
  'mfa.recovery_used': entry('mfa.recovery_used', ['回復コードの使用', 'Recovery code used'], (_d, L, u) =>
    J(L, `${ga(u, L)}回復コードでログインしました`, `${u || 'A user'} logged in with a recovery code`),
  ),
  'mfa.offline_used': entry('mfa.offline_used', ['オフライン認証', 'Offline verification'], (_d, L, u) =>
    J(L, `${forU(u, L)}認証コードを端末でオフライン検証しました`, `Verification code checked offline on the terminal${forU(u, L)}`),
  ),
  'mfa.unlock_refused': entry('mfa.unlock_refused', ['画面ロック解除の拒否', 'Unlock refused'], (d, L) =>
    J(L, `画面ロック解除の要求(${q(d.requested)})を拒否しました(理由 ${q(d.reason)})`, `Unlock request (${q(d.requested)}) refused (reason ${q(d.reason)})`),
  ),
  'mfa.reconcile_refused': entry('mfa.reconcile_refused', ['オフライン認証の不承認', 'Offline use refused'], (d, L) =>
    J(L, `端末 ${q(d.terminal)} のオフライン認証 ${d.refused} 件を認めませんでした(${d.applied} 件は反映)`, `${d.refused} offline verifications from ${q(d.terminal)} refused (${d.applied} applied)`),
  ),
  'mfa.rate_limited': entry('mfa.rate_limited', ['多要素認証の回数制限', 'MFA rate limited'], (d, L) =>
    J(L, `多要素認証の要求(${q(d.route)})が上限を超えました`, `MFA requests (${q(d.route)}) over the limit`),
  ),

  'software.unauthorized_process': entry('software.unauthorized_process', ['無許可ソフトウェアの実行', 'Unauthorized program running'], (d, L, u) =>
    J(L, `${ga(u, L)}無許可ソフトウェア ${q(d.path, PATH_PART)} を実行 — ${acted(d.action, L, ['停止します', 'stopping'])}`, `${u ? u + ' ran' : 'Running'} unauthorized program ${q(d.path, PATH_PART)} — ${acted(d.action, L, ['停止します', 'stopping'])}`),
  ),
  'software.unauthorized_file': entry('software.unauthorized_file', ['無許可の実行ファイル', 'Unauthorized executable file'], (d, L) =>
    J(L, `無許可の実行ファイル ${q(d.path, PATH_PART)} を検知しました — ${acted(d.action, L, ['隔離します', 'quarantining'])}`, `Unauthorized executable ${q(d.path, PATH_PART)} found — ${acted(d.action, L, ['隔離します', 'quarantining'])}`),
  ),
  'software.installed': entry('software.installed', ['ソフトウェアのインストール', 'Software installed'], (d, L) =>
    J(L, `パッケージ ${q(d.name)} ${q(d.version, 32)} がインストールされました — ${d.authorized ? '許可済み' : '無許可'}`, `Package ${q(d.name)} ${q(d.version, 32)} installed — ${d.authorized ? 'authorized' : 'not authorized'}`),
  ),
  'software.removed': entry('software.removed', ['ソフトウェアの削除', 'Software removed'], (d, L) =>
    J(L, `パッケージ ${q(d.name)} ${q(d.version, 32)} が削除されました`, `Package ${q(d.name)} ${q(d.version, 32)} removed`),
  ),
  'software.killed': entry('software.killed', ['無許可ソフトウェアの停止', 'Unauthorized program stopped'], (d, L) =>
    J(L, `無許可ソフトウェア ${q(d.path, PATH_PART)}(PID ${d.pid})を停止しました`, `Stopped unauthorized program ${q(d.path, PATH_PART)} (PID ${d.pid})`),
  ),
  'software.quarantined': entry('software.quarantined', ['無許可ファイルの隔離', 'File quarantined'], (d, L) =>
    J(L, `無許可の実行ファイル ${q(d.path, PATH_PART)} を隔離しました`, `Quarantined unauthorized executable ${q(d.path, PATH_PART)}`),
  ),
  'software.restored': entry('software.restored', ['隔離ファイルの復元', 'Quarantined file restored'], (d, L) =>
    J(L, `${q(d.by)} の指示で隔離ファイル ${q(d.path, PATH_PART)} を元に戻しました`, `Restored quarantined file ${q(d.path, PATH_PART)} as ${q(d.by)} asked`),
  ),
  'software.exec_denied': entry('software.exec_denied', ['実行前の拒否', 'Execution refused'], (d, L, u) =>
    J(L, `${ga(u, L)}実行しようとした ${q(d.path, PATH_PART)} を開始前に拒否しました`, `Refused ${q(d.path, PATH_PART)} before it ran${u ? ' (' + u + ')' : ''}`),
  ),
  'software.preexec_fallback': entry('software.preexec_fallback', ['実行前検査の既定動作', 'Pre-exec fallback'], (d, L) =>
    J(L, `実行前検査がエージェントの応答を待てず、既定動作(${q(d.fallback, 8)})を ${d.count} 回適用しました`, `Pre-exec check applied its fallback (${q(d.fallback, 8)}) ${d.count} times: the agent did not answer in time`),
  ),
  'software.preexec_started': entry('software.preexec_started', ['実行前検査の開始', 'Pre-exec check started'], (d, L) =>
    J(L, `実行前検査を開始しました(監視 ${d.marks.length} か所)`, `Pre-exec check started (${d.marks.length} places)`),
  ),
  'software.preexec_stopped': entry('software.preexec_stopped', ['実行前検査の停止', 'Pre-exec check stopped'], (d, L) =>
    J(L, `実行前検査が停止しました(${q(d.error, 80)})— 再起動まではプロセス監視のみ`, `Pre-exec check stopped (${q(d.error, 80)}) — only the process scan until it restarts`),
  ),
  'software.preexec_unavailable': entry('software.preexec_unavailable', ['実行前検査を利用不可', 'Pre-exec check unavailable'], (d, L) =>
    J(L, `この端末では実行前検査を利用できません(${q(d.reason)})`, `Pre-exec check unavailable on this terminal (${q(d.reason)})`),
  ),

  'software.baseline_captured': entry('software.baseline_captured', ['基準ソフトウェアの収集', 'Baseline captured'], (d, L) =>
    J(L, `基準ソフトウェアを収集しました(パッケージ ${d.packages}、実行ファイル ${d.files})— 管理コンソールへ送信します`, `Baseline captured (${d.packages} packages, ${d.files} executables) — uploading to the console`),
  ),
  'software.baseline_failed': entry('software.baseline_failed', ['基準ソフトウェアの収集失敗', 'Baseline capture failed'], (d, L) =>
    J(L, `基準ソフトウェアを作成できませんでした(${q(d.stage, 16)}: ${q(d.error, 100)})`, `Baseline could not be made (${q(d.stage, 16)}: ${q(d.error, 100)})`),
  ),

  'agent.started': entry('agent.started', ['エージェントの起動', 'Agent started'], (d, L) =>
    J(L, `エージェント ${q(d.version, 32)} が起動しました(ポリシー ${v(d.policyVersion)}${d.monitorOnly ? '、監視のみ' : ''})`, `Agent ${q(d.version, 32)} started (policy ${v(d.policyVersion)}${d.monitorOnly ? ', monitor only' : ''})`),
  ),
  'agent.stopped': entry('agent.stopped', ['エージェントの停止', 'Agent stopped'], (d, L) => J(L, `エージェントが停止しました(${q(d.reason)})`, `Agent stopped (${q(d.reason)})`)),
  'agent.tamper': entry('agent.tamper', ['改ざんの検知', 'Tampering detected'], (d, L) =>
    J(L, `改ざんを検知しました: ${q(d.what, 80)}(${q(d.reason, 80)})`, `Tampering detected: ${q(d.what, 80)} (${q(d.reason, 80)})`),
  ),
  'agent.error': entry('agent.error', ['エージェントのエラー', 'Agent error'], (d, L) => {
    const where = s(d.capability ?? d.stage ?? d.action ?? '');
    const what = q(d.error ?? d.reason ?? d.path, 100);
    return J(L, `エージェントでエラーが発生しました${where ? `(${where})` : ''}: ${what}`, `Agent error${where ? ` (${where})` : ''}: ${what}`);
  }),
  'agent.policy_applied': entry('agent.policy_applied', ['ポリシーの適用', 'Policy applied'], (d, L) => J(L, `ポリシー ${v(d.version)} を適用しました`, `Policy ${v(d.version)} applied`)),
  'agent.policy_rejected': entry('agent.policy_rejected', ['ポリシーの拒否', 'Policy rejected'], (d, L) =>
    J(L, `ポリシー ${typeof d.offeredVersion === 'number' ? v(d.offeredVersion) : ''}を拒否しました(${q(d.reason)})— ${v(d.inForce)} を継続`, `Policy ${typeof d.offeredVersion === 'number' ? v(d.offeredVersion) + ' ' : ''}rejected (${q(d.reason)}) — ${v(d.inForce)} stays in force`),
  ),
  // ---- posture (issue 16: the terminal's controls as the console judges them) ---------------------
  'posture.screen_lock_enforced': entry('posture.screen_lock_enforced', ['画面ロックの設定', 'Screen lock enforced'], (d, L) =>
    J(L, `画面ロックを ${d.maxIdleMinutes} 分以内に設定しました`, `Screen lock set to at most ${d.maxIdleMinutes} minutes`),
  ),
  'posture.noncompliant': entry('posture.noncompliant', ['対策状況の不適合', 'Terminal non-compliant'], (d, L) =>
    J(L, `端末 ${q(d.hostname)} が対策の基準を満たしていません(${d.failing.map((f) => s(f, 32)).join('、') || '-'})`, `Terminal ${q(d.hostname)} is not compliant (${d.failing.map((f) => s(f, 32)).join(', ') || '-'})`),
  ),
  'posture.compliant': entry('posture.compliant', ['対策状況の適合', 'Terminal compliant'], (d, L) =>
    J(L, `端末 ${q(d.hostname)} が対策の基準を満たすようになりました`, `Terminal ${q(d.hostname)} is compliant again`),
  ),
  'agent.enrolled': entry('agent.enrolled', ['端末の登録', 'Terminal enrolled'], (d, L) =>
    J(L, `端末 ${q(d.hostname)}(${q(d.os)})を登録しました${d.sameNameAs?.length ? '(同名の端末あり)' : ''}`, `Terminal ${q(d.hostname)} (${q(d.os)}) enrolled${d.sameNameAs?.length ? ' (another terminal has this name)' : ''}`),
  ),
  'agent.revoked': entry('agent.revoked', ['端末の失効(旧)', 'Terminal revoked (old)'], (d, L) => J(L, `端末 ${q(d.agentId)} を失効させました`, `Terminal ${q(d.agentId)} revoked`)),
  'agent.silent': entry('agent.silent', ['端末の応答なし', 'Terminal silent'], (d, L) =>
    J(L, `端末 ${q(d.hostname ?? d.agentId)} から応答がありません(最終確認 ${q(d.lastSeen, 40)})`, `No answer from terminal ${q(d.hostname ?? d.agentId)} (last seen ${q(d.lastSeen, 40)})`),
  ),
  'agent.back_online': entry('agent.back_online', ['端末の応答再開', 'Terminal back online'], (_d, L) => J(L, '端末が応答を再開しました', 'The terminal answers again')),
  'agent.chain_broken': entry('agent.chain_broken', ['ハッシュチェーンの不整合', 'Hash chain broken'], (d, L) =>
    J(L, `操作ログのハッシュチェーンが #${d.seq} で一致しません(${q(d.finding, 16)})`, `Hash chain broken at #${d.seq} (${q(d.finding, 16)})`),
  ),
  'agent.gap': entry('agent.gap', ['操作ログの欠落', 'Event gap'], (d, L) => J(L, `操作ログの欠落を #${d.seq} で検出しました(${q(d.detail, 80)})`, `Events missing at #${d.seq} (${q(d.detail, 80)})`)),
  'agent.upload_rejected': entry('agent.upload_rejected', ['送信の拒否', 'Upload rejected'], (_d, L) => J(L, '端末からの操作ログの送信を拒否しました', 'An event upload from the terminal was refused')),
  'agent.clock_skew': entry('agent.clock_skew', ['端末の時刻ずれ', 'Terminal clock skew'], (d, L) =>
    J(L, `端末の時刻(${q(d.claimed, 40)})が不正なため、受信時刻で ${d.events} 件記録しました`, `Terminal clock implausible (${q(d.claimed, 40)}): ${d.events} events stored at receipt time`),
  ),
  'agent.flood': entry('agent.flood', ['送信量の上限超過', 'Upload flood'], (d, L) =>
    J(L, `端末の送信が上限(${q(d.limit, 16)})を超えました(${d.batchEvents} 件)— ${d.retryAfterSeconds} 秒後に再送`, `Terminal over its upload limit (${q(d.limit, 16)}, ${d.batchEvents} events) — retry in ${d.retryAfterSeconds} s`),
  ),
  'agent.hostname_changed': entry('agent.hostname_changed', ['端末名の変更', 'Host name changed'], (d, L) =>
    J(L, `端末名が ${q(d.old)} から ${q(d.new)} に変わりました`, `Host name changed from ${q(d.old)} to ${q(d.new)}`),
  ),
  'agent.event_data_invalid': entry('agent.event_data_invalid', ['宣言と異なるイベント', 'Event data not as declared'], (d, L) =>
    J(L, `宣言と一致しないデータの ${q(d.type)} イベントを ${d.events} 件そのまま保存しました`, `${d.events} ${q(d.type)} events stored although their data did not match its declaration`),
  ),

  // ---- issue 17 delivery: outbox cap, re-send, disk full ------------------------------------------
  'agent.events_dropped': entry('agent.events_dropped', ['操作ログの破棄(上限)', 'Events dropped (outbox cap)'], (d, L) =>
    J(L, `未送信イベントが上限に達したため、重要度の低いイベント ${d.events} 件を古い順に破棄しました(${Object.keys(d.byType).slice(0, 4).map((t) => s(t, 40)).join('、')})`, `Outbox at its cap: ${d.events} low-importance events dropped, oldest first (${Object.keys(d.byType).slice(0, 4).map((t) => s(t, 40)).join(', ')})`),
  ),
  'agent.gap_filled': entry('agent.gap_filled', ['操作ログの欠落の解消', 'Event gap filled'], (d, L) =>
    J(L, `欠落していた #${d.from}〜#${d.to} を端末が再送し、欠落が解消しました`, `The terminal re-sent #${d.from}..#${d.to}; the gap is closed`),
  ),
  'agent.drop_accounted': entry('agent.drop_accounted', ['破棄済みとして説明された欠落', 'Gap accounted for by the agent'], (d, L) =>
    J(L, `#${d.seq} の破棄記録が ${d.events} 件の欠落を説明しています(ハッシュチェーン接続を確認)`, `Drop record #${d.seq} accounts for ${d.events} missing events (hash chain bridged)`),
  ),
  'agent.drop_unverified': entry('agent.drop_unverified', ['検証できない破棄記録', 'Drop record not verified'], (d, L) =>
    J(L, `#${d.seq} の破棄記録を検証できません(${q(d.detail, 80)})— 欠落は説明されていません`, `Drop record #${d.seq} could not be verified (${q(d.detail, 80)}) — the gap is not accounted for`),
  ),
  'console.disk_full': entry('console.disk_full', ['コンソールのディスク容量不足', 'Console disk full'], (d, L) =>
    J(L, `ディスク容量不足のため ${d.since}〜${d.until} に操作ログの受信を ${d.refusedBatches} 回拒否しました(${q(d.reason, 32)})— 端末が保持し再送します`, `Disk full: event uploads refused ${d.refusedBatches} times between ${d.since} and ${d.until} (${q(d.reason, 32)}) — terminals keep and re-send them`),
  ),

  // ---- issue 17 trust: certificate renewal, protocol versions --------------------------------------
  'agent.cert_renewed': entry('agent.cert_renewed', ['端末証明書の更新', 'Terminal certificate renewed'], (d, L) =>
    J(L, `端末のクライアント証明書を更新しました(有効期限 ${q(d.notAfter, 40)})`, `Terminal client certificate renewed (valid until ${q(d.notAfter, 40)})`),
  ),
  'console.server_cert_renewed': entry('console.server_cert_renewed', ['サーバー証明書の更新', 'Server certificate renewed'], (d, L) =>
    J(L, `管理コンソールのサーバー証明書を更新しました(有効期限 ${q(d.notAfter, 40)}、再起動なし)`, `Console server certificate renewed (valid until ${q(d.notAfter, 40)}, no restart)`),
  ),
  'agent.protocol_refused': entry('agent.protocol_refused', ['通信プロトコル版の拒否', 'Protocol version refused'], (d, L) =>
    J(L, `${q(d.from)} からの古い/不明な通信プロトコル(版 ${d.version ?? '不明'}、${q(d.reason, 32)})を拒否しました — エージェントの更新が必要です`, `Agent request from ${q(d.from)} refused: protocol ${d.version ?? 'unreadable'} (${q(d.reason, 32)}) — upgrade the agent`),
  ),

  // ---- admin.* (the console's own chain: the user is the console account) -----------------------
  'admin.usb_exception_granted': entry('admin.usb_exception_granted', ['一時許可の付与', 'Exception granted'], (d, L, u) =>
    J(L, `${ga(u, L)}機器 ${d.vendorId}:${d.productId}${d.serial ? `(シリアル ${shortSerial(d.serial)})` : ''} に ${q(d.expiresAt, 40)} までの一時許可を与えました`, `${u || 'An administrator'} granted device ${d.vendorId}:${d.productId}${d.serial ? ` (serial ${shortSerial(d.serial)})` : ''} an exception until ${q(d.expiresAt, 40)}`),
  ),
  'admin.usb_exception_requested': entry('admin.usb_exception_requested', ['一時許可の申請', 'Exception requested'], (d, L) =>
    J(L, `${q(d.staffUser)} が機器 ${d.vendorId}:${d.productId} の一時許可を申請しました(理由 ${q(d.reason, 80)})`, `${q(d.staffUser)} applied for an exception for device ${d.vendorId}:${d.productId} (reason ${q(d.reason, 80)})`),
  ),
  'admin.usb_exception_revoked': entry('admin.usb_exception_revoked', ['一時許可の取り消し', 'Exception revoked'], (d, L, u) =>
    J(L, `${ga(u, L)}機器 ${d.vendorId}:${d.productId} の一時許可を取り消しました`, `${u || 'An administrator'} revoked the exception for ${d.vendorId}:${d.productId}`),
  ),
  'admin.usb_exception_rejected': entry('admin.usb_exception_rejected', ['一時許可申請の却下', 'Exception application rejected'], (d, L, u) =>
    J(L, `${ga(u, L)}${q(d.requestedBy)} の一時許可申請を却下しました`, `${u || 'An approver'} rejected ${q(d.requestedBy)}'s application`),
  ),
  // 申請 → 上長承認 (issue 15: agent/usb/apply.ts, console/usb/applications-store.ts)
  'usb.application_sent': entry('usb.application_sent', ['一時許可の申請(端末から)', 'Application sent from the terminal'], (d, L, u) =>
    J(L, `${ga(u, L)}機器 ${q([s(d.manufacturer), s(d.product)].filter(Boolean).join(' ') || `${d.vendorId}:${d.productId}`)} の一時許可を ${s(d.hours)} 時間申請しました(申請番号 ${q(d.ref, 16)}、理由 ${q(d.reason, 80)})`, `${u || 'A user'} applied for a ${s(d.hours)} h exception for ${q([s(d.manufacturer), s(d.product)].filter(Boolean).join(' ') || `${d.vendorId}:${d.productId}`)} (reference ${q(d.ref, 16)}, reason ${q(d.reason, 80)})`),
  ),
  'usb.application_refused': entry('usb.application_refused', ['申請の拒否(端末)', 'Application refused at the terminal'], (d, L, u) =>
    J(L, `${ga(u, L)}送った申請を端末が受け付けませんでした(${q(d.reason, 32)}、1分間に ${s(d.refused)} 回)`, `The terminal refused an application${u ? ' from ' + u : ''} (${q(d.reason, 32)}, ${s(d.refused)} in a minute)`),
  ),
  'usb.application_answered': entry('usb.application_answered', ['申請結果の通知', 'Applicant told the decision'], (d, L, u) =>
    J(L, `${u ? u + ' に' : ''}申請の結果(${d.status === 'approved' ? '承認' : '却下'})を通知しました`, `${u ? u + ' was' : 'The applicant was'} told the application was ${d.status === 'approved' ? 'approved' : 'rejected'}`),
  ),
  'admin.application_approved': entry('admin.application_approved', ['申請の承認', 'Application approved'], (d, L, u) =>
    J(L, `${ga(u, L)}${q(d.applicant)} の申請(機器 ${d.vendorId}:${d.productId})を ${s(d.hours)} 時間承認しました`, `${u || 'An approver'} approved ${q(d.applicant)}'s application (device ${d.vendorId}:${d.productId}) for ${s(d.hours)} h`),
  ),
  'admin.application_rejected': entry('admin.application_rejected', ['申請の却下', 'Application rejected'], (d, L, u) =>
    J(L, `${ga(u, L)}${q(d.applicant)} の申請(機器 ${d.vendorId}:${d.productId})を却下しました`, `${u || 'An approver'} rejected ${q(d.applicant)}'s application (device ${d.vendorId}:${d.productId})`),
  ),
  'admin.application_refused': entry('admin.application_refused', ['申請の受付拒否(上限)', 'Application refused (limit)'], (d, L) =>
    J(L, `端末の未処理の申請が上限(${s(d.pending)} 件)のため受け付けませんでした`, `Application refused: the terminal already has ${s(d.pending)} pending`),
  ),
  'admin.enroll_refused': entry('admin.enroll_refused', ['端末登録の拒否', 'Enrolment refused'], (d, L) =>
    J(L, `${q(d.from)} からの端末登録(${q(d.hostname)})を拒否しました(${q(d.reason)})`, `Enrolment of ${q(d.hostname)} from ${q(d.from)} refused (${q(d.reason)})`),
  ),
  'admin.enroll_token_created': entry('admin.enroll_token_created', ['登録トークンの発行', 'Enrolment token created'], (d, L, u) =>
    J(L, `${ga(u, L)}端末登録トークンを発行しました(${d.uses} 回、${q(d.expiresAt, 40)} まで)`, `${u || 'An administrator'} created an enrolment token (${d.uses} uses, until ${q(d.expiresAt, 40)})`),
  ),
  'admin.terminal_revoked': entry('admin.terminal_revoked', ['端末の失効', 'Terminal revoked'], (d, L, u) =>
    J(L, `${ga(u, L)}端末 ${q(d.agentId)} を失効させました`, `${u || 'An administrator'} revoked terminal ${q(d.agentId)}`),
  ),
  'admin.console_initialised': entry('admin.console_initialised', ['管理コンソールの初期化', 'Console initialised'], (d, L) =>
    J(L, `管理コンソールを初期化しました(${q(d.organisation)})`, `Console initialised (${q(d.organisation)})`),
  ),
  'admin.backup_taken': entry('admin.backup_taken', ['バックアップの作成', 'Backup taken'], (d, L, u) =>
    J(L, `${ga(u, L)}バックアップを作成しました(${q(d.file, PATH_PART)})`, `${u || 'An administrator'} took a backup (${q(d.file, PATH_PART)})`),
  ),
  'admin.backup_failed': entry('admin.backup_failed', ['バックアップの失敗', 'Backup failed'], (d, L) =>
    J(L, `バックアップ(${q(d.file, PATH_PART)})を作成できませんでした: ${q(d.reason, PATH_PART)}`, `The backup (${q(d.file, PATH_PART)}) failed: ${q(d.reason, PATH_PART)}`),
  ),
  'admin.console_restored': entry('admin.console_restored', ['バックアップからの復元', 'Console restored'], (d, L, u) =>
    J(L, `${ga(u, L)}${q(d.backupCreatedAt, 40)} のバックアップから復元しました`, `${u || 'An administrator'} restored the console from the backup of ${q(d.backupCreatedAt, 40)}`),
  ),
  'admin.policy_published': entry('admin.policy_published', ['ポリシーの発行', 'Policy published'], (d, L, u) =>
    J(L, `${ga(u, L)}ポリシー ${v(d.version)} を発行しました(前 ${v(d.previousVersion)})`, `${u || 'An administrator'} published policy ${v(d.version)} (was ${v(d.previousVersion)})`),
  ),
  'admin.policy_changed': entry('admin.policy_changed', ['ポリシーの変更', 'Policy changed'], (d, L, u) =>
    J(L, `${ga(u, L)}ポリシーを変更しました${d.diff?.length ? `(${d.diff.length} 項目)` : ''}`, `${u || 'An administrator'} changed the policy${d.diff?.length ? ` (${d.diff.length} items)` : ''}`),
  ),
  'admin.login': entry('admin.login', ['ログイン', 'Login'], (d, L, u) => J(L, `${ga(u, L)}${q(d.from)} からログインしました`, `${u || 'Someone'} logged in from ${q(d.from)}`)),
  'admin.login_failed': entry('admin.login_failed', ['ログイン失敗', 'Login failed'], (d, L, u) =>
    J(L, `${u || '不明なユーザー'} のログインに失敗しました(${q(d.reason)}、${q(d.from)} から)`, `Login failed for ${u || 'an unknown user'} (${q(d.reason)}, from ${q(d.from)})`),
  ),
  'admin.login_throttled': entry('admin.login_throttled', ['ログイン試行の制限', 'Login throttled'], (d, L) =>
    J(L, `${q(d.from)} からのログイン試行が多すぎるため制限しました`, `Too many login attempts from ${q(d.from)}: throttled`),
  ),
  'admin.logout': entry('admin.logout', ['ログアウト', 'Logout'], (_d, L, u) => J(L, `${ga(u, L)}ログアウトしました`, `${u || 'Someone'} logged out`)),
  'admin.account_locked': entry('admin.account_locked', ['アカウントのロック', 'Account locked'], (d, L, u) =>
    J(L, `ログイン失敗が続いたため ${u || 'アカウント'} を ${q(d.until, 40)} までロックしました`, `${u || 'The account'} was locked until ${q(d.until, 40)} after repeated failures`),
  ),
  'admin.account_created': entry('admin.account_created', ['アカウントの作成', 'Account created'], (d, L, u) => J(L, `${ga(u, L)}アカウント ${q(d.account)} を作成しました`, `${u || 'An administrator'} created account ${q(d.account)}`)),
  'admin.account_disabled': entry('admin.account_disabled', ['アカウントの無効化', 'Account disabled'], (d, L, u) => J(L, `${ga(u, L)}アカウント ${q(d.account)} を無効にしました`, `${u || 'An administrator'} disabled account ${q(d.account)}`)),
  'admin.account_enabled': entry('admin.account_enabled', ['アカウントの有効化', 'Account enabled'], (d, L, u) => J(L, `${ga(u, L)}アカウント ${q(d.account)} を有効にしました`, `${u || 'An administrator'} enabled account ${q(d.account)}`)),
  'admin.account_unlocked': entry('admin.account_unlocked', ['アカウントのロック解除', 'Account unlocked'], (d, L, u) =>
    J(L, `${ga(u, L)}アカウント ${q(d.account)} のロックを解除しました`, `${u || 'An administrator'} unlocked account ${q(d.account)}`),
  ),
  'admin.password_change_failed': entry('admin.password_change_failed', ['パスワード変更の失敗', 'Password change failed'], (d, L) =>
    J(L, `${q(d.account)} のパスワード変更に失敗しました(${d.failures}/${d.max} 回)`, `Password change failed for ${q(d.account)} (${d.failures}/${d.max})`),
  ),
  'admin.password_changed': entry('admin.password_changed', ['パスワードの変更', 'Password changed'], (d, L) =>
    J(L, `${q(d.account)} のパスワードを変更しました(他のセッション ${d.otherSessionsEnded} 件を終了)`, `Password of ${q(d.account)} changed (${d.otherSessionsEnded} other sessions ended)`),
  ),
  'admin.session_ended': entry('admin.session_ended', ['セッションの終了', 'Session ended'], (d, L) =>
    J(L, `${q(d.account)} のセッションを終了しました(${q(d.reason)})`, `Session of ${q(d.account)} ended (${q(d.reason)})`),
  ),
  'admin.csrf_refused': entry('admin.csrf_refused', ['不正な要求の拒否', 'Cross-site request refused'], (d, L) =>
    J(L, `${q(d.from)} からの不正な要求(${q(d.path, 80)})を拒否しました`, `Cross-site request to ${q(d.path, 80)} from ${q(d.from)} refused`),
  ),
  'admin.forbidden': entry('admin.forbidden', ['権限のない操作', 'Forbidden action'], (d, L, u) =>
    J(L, `${ga(u, L)}権限のない操作(${q(d.method, 16)} ${q(d.path, 80)})を試みました`, `${u || 'Someone'} tried a forbidden action (${q(d.method, 16)} ${q(d.path, 80)})`),
  ),
  'admin.report_generated': entry('admin.report_generated', ['自己点検レポートの作成', 'Report generated'], (d, L, u) =>
    J(L, `${ga(u, L)}自己点検レポート(${q(d.from, 16)}〜${q(d.to, 16)})を作成しました`, `${u || 'Someone'} generated the self-inspection report (${q(d.from, 16)} – ${q(d.to, 16)})`),
  ),
  'admin.evidence_exported': entry('admin.evidence_exported', ['監査証跡の出力', 'Evidence exported'], (d, L, u) =>
    J(L, `${ga(u, L)}監査証跡(${q(d.from, 16)}〜${q(d.to, 16)}、操作ログ ${d.events} 件)を出力しました`, `${u || 'Someone'} exported the audit evidence (${q(d.from, 16)} – ${q(d.to, 16)}, ${d.events} events)`),
  ),
  // issue 17: retention with verifiable archives
  'admin.archive_written': entry('admin.archive_written', ['操作ログのアーカイブ', 'Events archived'], (d, L, u) =>
    J(L, `${ga(u, L)}操作ログ ${d.events} 件をアーカイブ ${q(d.archive, 80)} に書き出しました(${d.families.map((f) => s(f, 32)).join('・')})`, `${u || 'Someone'} archived ${d.events} events to ${q(d.archive, 80)} (${d.families.map((f) => s(f, 32)).join(', ')})`),
  ),
  'admin.events_deleted': entry('admin.events_deleted', ['保存期間切れの操作ログの削除', 'Expired events deleted'], (d, L, u) =>
    J(L, `${ga(u, L)}アーカイブ ${q(d.archive, 80)} に書き出した操作ログ ${d.events} 件を削除しました`, `${u || 'Someone'} deleted ${d.events} events archived in ${q(d.archive, 80)}`),
  ),
  'admin.archive_failed': entry('admin.archive_failed', ['アーカイブの失敗', 'Archive failed'], (d, L) =>
    J(L, `操作ログ ${d.events} 件をアーカイブできませんでした(削除していません): ${q(d.reason, 120)}`, `Could not archive ${d.events} events (nothing deleted): ${q(d.reason, 120)}`),
  ),
  'admin.retention_set': entry('admin.retention_set', ['保存期間の設定', 'Retention period set'], (d, L, u) =>
    d.days === null
      ? J(L, `${ga(u, L)}${q(d.family, 32)} の保存期間を解除しました(すべて保存)`, `${u || 'Someone'} removed the retention period of ${q(d.family, 32)} (keep everything)`)
      : J(L, `${ga(u, L)}${q(d.family, 32)} の保存期間を ${d.days} 日に設定しました`, `${u || 'Someone'} set the retention period of ${q(d.family, 32)} to ${d.days} days`),
  ),
  'admin.events_exported': entry('admin.events_exported', ['操作ログのCSV出力', 'Events exported'], (d, L, u) => J(L, `${ga(u, L)}操作ログ ${d.rows} 件をCSV出力しました`, `${u || 'Someone'} exported ${d.rows} events as CSV`)),
  'admin.usb_devices_exported': entry('admin.usb_devices_exported', ['機器一覧のCSV出力', 'Devices exported'], (d, L, u) => J(L, `${ga(u, L)}機器一覧 ${d.rows} 件をCSV出力しました`, `${u || 'Someone'} exported ${d.rows} devices as CSV`)),
  'admin.usb_exports_exported': entry('admin.usb_exports_exported', ['持ち出しログのCSV出力', 'Export log exported'], (d, L, u) => J(L, `${ga(u, L)}持ち出しログ ${d.rows} 件をCSV出力しました`, `${u || 'Someone'} exported ${d.rows} export-log rows as CSV`)),
  'admin.software_inventory_exported': entry('admin.software_inventory_exported', ['ソフトウェア資産のCSV出力', 'Software inventory exported'], (d, L, u) =>
    J(L, `${ga(u, L)}ソフトウェア資産 ${d.rows} 件をCSV出力しました`, `${u || 'Someone'} exported ${d.rows} software rows as CSV`),
  ),
  'admin.mfa_enrolled': entry('admin.mfa_enrolled', ['多要素認証の登録', 'MFA enrolled'], (d, L, u) => J(L, `${ga(u, L)}${q(d.staffUser)} の多要素認証を登録しました`, `${u || 'An administrator'} enrolled ${q(d.staffUser)} for MFA`)),
  'admin.mfa_reset': entry('admin.mfa_reset', ['多要素認証の再登録', 'MFA reset'], (d, L, u) => J(L, `${ga(u, L)}${q(d.staffUser)} の多要素認証を再登録しました`, `${u || 'An administrator'} reset MFA for ${q(d.staffUser)}`)),
  'admin.mfa_confirmed': entry('admin.mfa_confirmed', ['多要素認証の確認', 'MFA confirmed'], (d, L) => J(L, `${q(d.staffUser)} の認証アプリの設定を確認しました`, `${q(d.staffUser)}'s authenticator confirmed`)),
  'admin.mfa_confirm_failed': entry('admin.mfa_confirm_failed', ['多要素認証の確認失敗', 'MFA confirmation failed'], (d, L) =>
    J(L, `${q(d.staffUser)} の認証アプリの確認に失敗しました(${q(d.reason)})`, `Confirming ${q(d.staffUser)}'s authenticator failed (${q(d.reason)})`),
  ),
  'admin.mfa_disabled': entry('admin.mfa_disabled', ['多要素認証の無効化', 'MFA disabled'], (d, L, u) => J(L, `${ga(u, L)}${q(d.staffUser)} の多要素認証を無効にしました`, `${u || 'An administrator'} disabled MFA for ${q(d.staffUser)}`)),
  'admin.mfa_enabled': entry('admin.mfa_enabled', ['多要素認証の有効化', 'MFA enabled'], (d, L, u) => J(L, `${ga(u, L)}${q(d.staffUser)} の多要素認証を有効にしました`, `${u || 'An administrator'} enabled MFA for ${q(d.staffUser)}`)),
  'admin.mfa_unlocked': entry('admin.mfa_unlocked', ['多要素認証のロック解除', 'MFA unlocked'], (d, L, u) => J(L, `${ga(u, L)}${q(d.staffUser)} のロックを解除しました`, `${u || 'An administrator'} unlocked ${q(d.staffUser)}`)),
  'admin.mfa_recovery_codes': entry('admin.mfa_recovery_codes', ['回復コードの発行', 'Recovery codes issued'], (d, L, u) =>
    J(L, `${ga(u, L)}${q(d.staffUser)} の回復コードを ${d.count} 個発行しました`, `${u || 'An administrator'} issued ${d.count} recovery codes for ${q(d.staffUser)}`),
  ),
  'admin.mfa_tokens_imported': entry('admin.mfa_tokens_imported', ['ハードウェアトークンの取り込み', 'Tokens imported'], (d, L, u) =>
    J(L, `${ga(u, L)}ハードウェアトークン ${d.count} 個を取り込みました(割り当て ${d.assigned}、未割り当て ${d.unassigned})`, `${u || 'An administrator'} imported ${d.count} hardware tokens (${d.assigned} assigned, ${d.unassigned} unassigned)`),
  ),
  'admin.mfa_token_assigned': entry('admin.mfa_token_assigned', ['トークンの割り当て', 'Token assigned'], (d, L, u) =>
    J(L, `${ga(u, L)}トークン ${q(d.serial)} を ${q(d.staffUser)} に割り当てました`, `${u || 'An administrator'} assigned token ${q(d.serial)} to ${q(d.staffUser)}`),
  ),
  'admin.mfa_resync_failed': entry('admin.mfa_resync_failed', ['トークン再同期の失敗', 'Token resync failed'], (d, L) =>
    J(L, `${q(d.staffUser)} のトークン再同期に失敗しました(${q(d.reason)})`, `Resynchronising ${q(d.staffUser)}'s token failed (${q(d.reason)})`),
  ),
  'admin.mfa_resynced': entry('admin.mfa_resynced', ['トークンの再同期', 'Token resynced'], (d, L, u) =>
    J(L, `${ga(u, L)}${q(d.staffUser)} のトークンを再同期しました`, `${u || 'An administrator'} resynchronised ${q(d.staffUser)}'s token`),
  ),
  'admin.mfa_assigned': entry('admin.mfa_assigned', ['利用者の端末割り当て', 'User assigned to terminal'], (d, L, u) =>
    J(L, `${ga(u, L)}${q(d.staffUser)} を端末 ${q(d.terminal)} に割り当てました`, `${u || 'An administrator'} assigned ${q(d.staffUser)} to terminal ${q(d.terminal)}`),
  ),
  'admin.mfa_unassigned': entry('admin.mfa_unassigned', ['利用者の端末割り当て解除', 'User unassigned from terminal'], (d, L, u) =>
    J(L, `${ga(u, L)}${q(d.staffUser)} の端末 ${q(d.terminal)} への割り当てを解除しました`, `${u || 'An administrator'} removed ${q(d.staffUser)} from terminal ${q(d.terminal)}`),
  ),
  'admin.mfa_validate_client_added': entry('admin.mfa_validate_client_added', ['認証クライアントの追加', 'Validate client added'], (d, L, u) =>
    J(L, `${ga(u, L)}認証クライアント ${q(d.name)}(${q(d.address)})を追加しました`, `${u || 'An administrator'} added validate client ${q(d.name)} (${q(d.address)})`),
  ),
  'admin.mfa_validate_refused': entry('admin.mfa_validate_refused', ['認証要求の拒否', 'Validate request refused'], (d, L) =>
    J(L, `${q(d.from)} からの認証要求を拒否しました(${q(d.cause)})`, `Validate request from ${q(d.from)} refused (${q(d.cause)})`),
  ),
  'admin.software_baseline_imported': entry('admin.software_baseline_imported', ['基準ソフトウェアの取り込み', 'Baseline imported'], (d, L, u) =>
    J(L, `${ga(u, L)}端末 ${q(d.host)} の基準ソフトウェア(パッケージ ${d.packages}、ファイル ${d.files})を取り込みました — 承認待ち`, `${u || 'Someone'} imported the baseline of ${q(d.host)} (${d.packages} packages, ${d.files} files) — pending approval`),
  ),
  'admin.software_baseline_approved': entry('admin.software_baseline_approved', ['基準ソフトウェアの承認', 'Baseline approved'], (d, L, u) =>
    J(L, `${ga(u, L)}基準ソフトウェア ${q(d.id, 16)} を承認しました(ポリシー ${v(d.policyVersion)})`, `${u || 'An administrator'} approved baseline ${q(d.id, 16)} (policy ${v(d.policyVersion)})`),
  ),
  'admin.software_baseline_rejected': entry('admin.software_baseline_rejected', ['基準ソフトウェアの却下', 'Baseline rejected'], (d, L, u) =>
    J(L, `${ga(u, L)}基準ソフトウェア ${q(d.id, 16)} を却下しました`, `${u || 'An administrator'} rejected baseline ${q(d.id, 16)}`),
  ),
  'admin.software_baseline_requested': entry('admin.software_baseline_requested', ['基準ソフトウェアの要求', 'Baseline requested'], (d, L, u) =>
    J(L, `${ga(u, L)}端末 ${q(d.hostname)} を基準にするよう要求しました(次回の同期で収集)`, `${u || 'An administrator'} asked terminal ${q(d.hostname)} for its baseline (collected at its next sync)`),
  ),
  'admin.software_restore_requested': entry('admin.software_restore_requested', ['隔離ファイルの復元指示', 'Restore requested'], (d, L, u) =>
    J(L, `${ga(u, L)}隔離ファイル ${q(d.path, PATH_PART)} の復元を指示しました`, `${u || 'An administrator'} asked to restore ${q(d.path, PATH_PART)}`),
  ),
  // Issue 17 SIEM forwarding.
  'admin.siem_configured': entry('admin.siem_configured', ['SIEM転送の設定', 'SIEM forwarding configured'], (d, L, u) =>
    J(L, `${ga(u, L)}SIEM転送先を ${q(d.target, 120)}(証明書名 ${q(d.name, 120)}、${q(d.facility, 16)})に設定しました`, `${u || 'An administrator'} set SIEM forwarding to ${q(d.target, 120)} (certificate name ${q(d.name, 120)}, ${q(d.facility, 16)})`),
  ),
  'admin.siem_disabled': entry('admin.siem_disabled', ['SIEM転送の停止設定', 'SIEM forwarding turned off'], (d, L, u) =>
    J(L, `${ga(u, L)}SIEM転送(${q(d.target, 120)})を停止しました`, `${u || 'An administrator'} turned off SIEM forwarding (${q(d.target, 120)})`),
  ),
  'console.siem_stopped': entry('console.siem_stopped', ['SIEM転送の中断', 'SIEM forwarding stopped'], (d, L) =>
    J(L, `SIEM ${q(d.target, 120)} への転送が止まっています(${q(d.error, 120)}、未転送 ${d.backlog} 件)— 再接続を続けます`, `Forwarding to SIEM ${q(d.target, 120)} stopped (${q(d.error, 120)}, ${d.backlog} waiting) — reconnecting`),
  ),
  'console.siem_resumed': entry('console.siem_resumed', ['SIEM転送の再開', 'SIEM forwarding resumed'], (d, L) =>
    J(L, `SIEM ${q(d.target, 120)} への転送を再開しました(停止 ${d.downSeconds} 秒、未転送 ${d.backlog} 件から)`, `Forwarding to SIEM ${q(d.target, 120)} resumed (down ${d.downSeconds} s, ${d.backlog} waiting)`),
  ),
};

const PREFIX_NAMES: Record<string, Pair> = {
  usb: ['USB・外部記録媒体', 'USB & removable media'],
  mfa: ['多要素認証', 'MFA'],
  software: ['ソフトウェア', 'Software'],
  agent: ['端末・エージェント', 'Terminals & agents'],
  admin: ['管理操作', 'Administration'],
  console: ['管理コンソール', 'Console'],
  posture: ['端末の対策状況', 'Terminal posture'],
};

/** Whether a type has its own name and sentence (the catalogue test asks this). */
export function hasEventText(type: string): boolean {
  return Object.hasOwn(EVENT_TEXT, type);
}

/** The name of an event type (or of a "usb.*" family) for people; unknown types show their id. */
export function eventTypeName(type: string, L: TextLang): string {
  if (hasEventText(type)) return pick(EVENT_TEXT[type]!.name, L);
  const fam = /^([a-z]{1,20})\.\*$/.exec(type);
  if (fam && Object.hasOwn(PREFIX_NAMES, fam[1]!)) return J(L, `${pick(PREFIX_NAMES[fam[1]!]!, L)}(すべて)`, `${pick(PREFIX_NAMES[fam[1]!]!, L)} (all)`);
  return safeText(type, 80);
}

function whereText(terminal: string | null | undefined, L: TextLang): string {
  if (!terminal || terminal === 'console') return '';
  const t = safeText(terminal, PART);
  return J(L, `端末 ${t} で `, `On ${t}: `);
}

function bound(text: string): string {
  return safeText(text, SENTENCE_MAX);
}

/**
 * One sentence for an event: "端末 PC-KOSEKI-07 で 山田 が USBメモリ SanDisk Ultra (シリアル 4C53…) を接続 — 遮断しました".
 * Never throws: undeclared or non-matching data gets the fallback sentence (type name + note).
 */
export function describeEvent(e: DescribableEvent, L: TextLang, opts: DescribeOptions = {}): string {
  const type = typeof e.type === 'string' ? e.type : '';
  const u = typeof e.user === 'string' ? safeText(e.user, PART) : '';
  const where = whereText(opts.terminal, L);
  const text = Object.hasOwn(EVENT_TEXT, type) ? EVENT_TEXT[type]! : null;
  if (text) {
    let data: unknown = null;
    try {
      data = readEventData(type as EventType, e.data);
    } catch {
      data = null;
    }
    if (data !== null) {
      try {
        return bound(where + text.say(data as never, L, u));
      } catch {
        // a sentence function met data its declaration allowed but it did not expect: fall back
      }
    }
  }
  return bound(fallback(type, L, u, where, text !== null));
}

function fallback(type: string, L: TextLang, u: string, where: string, known: boolean): string {
  const name = eventTypeName(type, L);
  const who = u ? J(L, `(${u})`, ` (${u})`) : '';
  const note = known ? J(L, '— データが宣言と一致しないため詳細は表を参照', '— data not as declared: see the fields') : J(L, '— 説明の登録されていない種別', '— a type without a description');
  return `${where}${name}${who} ${note}`;
}

// ---- fields ------------------------------------------------------------------------------------

/** Labels of data fields; a key without one is shown as itself (a newer agent's field). */
export const FIELD_LABELS: Record<string, Pair> = {
  // Backup and restore (issue 17: admin.backup_taken, admin.console_restored)
  backupId: ['バックアップID', 'Backup id'],
  file: ['ファイル', 'File'],
  passphraseFrom: ['パスフレーズの入力元', 'Passphrase from'],
  backupCreatedAt: ['バックアップ作成日時', 'Backup taken at'],
  consoleVersion: ['コンソールの版', 'Console version'],
  // SIEM forwarding (issue 17: admin.siem_*, console.siem_*)
  target: ['転送先', 'Target'],
  facility: ['ファシリティ', 'Facility'],
  clientCert: ['クライアント証明書', 'Client certificate'],
  caFingerprint: ['CA証明書の指紋', 'CA fingerprint'],
  cursor: ['転送済みの位置', 'Cursor'],
  backlog: ['未転送', 'Backlog'],
  suppressed: ['抑止した通知', 'Suppressed notices'],
  downSeconds: ['停止時間(秒)', 'Down (s)'],
  // 持ち出しログ (usb.file_written)
  pathHash: ['パスのSHA-256(元のバイト列)', 'Path SHA-256 (raw bytes)'],
  hashSkipped: ['ハッシュ未計算の理由', 'Why not hashed'],
  userSource: ['利用者の特定方法', 'User from'],
  fsType: ['ファイルシステム', 'Filesystem'],
  kind: ['種類', 'Kind'],
  mode: ['動作モード', 'Mode'],
  port: ['ポート', 'Port'],
  busnum: ['バス番号', 'Bus'],
  devnum: ['デバイス番号', 'Device number'],
  vendorId: ['ベンダーID', 'Vendor ID'],
  productId: ['製品ID', 'Product ID'],
  bcdDevice: ['機器の版', 'Device release'],
  deviceClass: ['機器クラス', 'Device class'],
  interfaceClasses: ['インターフェースクラス', 'Interface classes'],
  interfaces: ['インターフェースごとの判定', 'Interface verdicts'],
  manufacturer: ['製造元', 'Manufacturer'],
  product: ['製品名', 'Product'],
  serial: ['シリアル番号', 'Serial number'],
  serialHex: ['シリアル(照合用16進)', 'Serial (hex, for matching)'],
  descriptorHash: ['記述子ハッシュ', 'Descriptor hash'],
  rule: ['適用された規則', 'Rule applied'],
  partial: ['一部のみ許可', 'Partly allowed'],
  readonly: ['読み取り専用', 'Read-only'],
  exceptionId: ['一時許可ID', 'Exception ID'],
  note: ['備考', 'Note'],
  device: ['デバイス', 'Device'],
  partitions: ['パーティション', 'Partitions'],
  platform: ['プラットフォーム', 'Platform'],
  policyVersion: ['ポリシー版', 'Policy version'],
  notes: ['注記', 'Notes'],
  terminal: ['端末', 'Terminal'],
  result: ['結果', 'Result'],
  reason: ['理由', 'Reason'],
  offline: ['オフライン', 'Offline'],
  via: ['経路', 'Via'],
  service: ['サービス', 'Service'],
  tty: ['端末装置', 'TTY'],
  rhost: ['接続元ホスト', 'Remote host'],
  peerUid: ['要求元UID', 'Peer UID'],
  peerPid: ['要求元PID', 'Peer PID'],
  peerUser: ['要求元ユーザー', 'Peer user'],
  userShown: ['表示された利用者', 'User shown'],
  stale: ['古さ', 'Stale'],
  step: ['時間ステップ', 'Time step'],
  locked: ['ロック', 'Locked'],
  requested: ['要求された利用者', 'Requested user'],
  foldedBefore: ['まとめた件数', 'Folded before'],
  refused: ['拒否件数', 'Refused'],
  applied: ['反映件数', 'Applied'],
  reasons: ['理由ごとの件数', 'Reasons'],
  users: ['利用者', 'Users'],
  route: ['経路', 'Route'],
  limit: ['上限', 'Limit'],
  from: ['接続元・開始', 'From'],
  to: ['終了', 'To'],
  pid: ['プロセスID', 'PID'],
  uid: ['ユーザーID', 'UID'],
  path: ['パス', 'Path'],
  sha256: ['SHA-256', 'SHA-256'],
  exe: ['実行ファイル', 'Executable'],
  exeSha256: ['実行ファイルのSHA-256', 'Executable SHA-256'],
  script: ['スクリプト', 'Script'],
  scriptSha256: ['スクリプトのSHA-256', 'Script SHA-256'],
  deleted: ['削除済み', 'Deleted'],
  action: ['対処', 'Action'],
  detectMs: ['検知時間(ミリ秒)', 'Detection (ms)'],
  link: ['リンク先', 'Link'],
  size: ['サイズ(バイト)', 'Size (bytes)'],
  fileMode: ['ファイルモード', 'File mode'],
  event: ['検知の種類', 'File event'],
  killMs: ['停止時間(ミリ秒)', 'Stop time (ms)'],
  id: ['ID', 'ID'],
  name: ['名前', 'Name'],
  version: ['版', 'Version'],
  arch: ['アーキテクチャ', 'Architecture'],
  previousVersion: ['以前の版', 'Previous version'],
  authorized: ['許可済み', 'Authorized'],
  by: ['指示した人', 'By'],
  decideMs: ['判定時間(ミリ秒)', 'Decision (ms)'],
  fallback: ['既定動作', 'Fallback'],
  count: ['件数', 'Count'],
  timeoutMs: ['待ち時間上限(ミリ秒)', 'Timeout (ms)'],
  marks: ['監視場所', 'Marked places'],
  restarts: ['再起動回数', 'Restarts'],
  code: ['終了コード', 'Exit code'],
  signal: ['シグナル', 'Signal'],
  error: ['エラー', 'Error'],
  restartInMs: ['再起動まで(ミリ秒)', 'Restart in (ms)'],
  message: ['メッセージ', 'Message'],
  monitorOnly: ['監視のみ', 'Monitor only'],
  hostname: ['端末名', 'Host name'],
  what: ['対象', 'What'],
  stage: ['段階', 'Stage'],
  capability: ['機能', 'Capability'],
  seq: ['連番', 'Sequence'],
  issuedBy: ['発行者', 'Issued by'],
  source: ['取得元', 'Source'],
  detail: ['詳細', 'Detail'],
  offeredVersion: ['提示された版', 'Offered version'],
  inForce: ['適用中の版', 'Version in force'],
  agentId: ['端末ID', 'Terminal ID'],
  os: ['OS', 'OS'],
  sameNameAs: ['同名の端末', 'Same name as'],
  lastSeen: ['最終確認', 'Last seen'],
  finding: ['検出内容', 'Finding'],
  claimed: ['端末の時刻', 'Claimed time'],
  received: ['受信時刻', 'Received'],
  events: ['イベント数', 'Events'],
  batchEvents: ['送信件数', 'Batch events'],
  batchBytes: ['送信バイト数', 'Batch bytes'],
  retryAfterSeconds: ['再送まで(秒)', 'Retry after (s)'],
  old: ['変更前', 'Old'],
  new: ['変更後', 'New'],
  type: ['種別', 'Type'],
  errors: ['不一致の内容', 'Errors'],
  access: ['アクセス', 'Access'],
  expiresAt: ['有効期限', 'Expires at'],
  forMs: ['期間(ミリ秒)', 'Duration (ms)'],
  staffUser: ['職員', 'Staff user'],
  requestedBy: ['申請者', 'Requested by'],
  uses: ['使用回数', 'Uses'],
  before: ['変更前', 'Before'],
  after: ['変更後', 'After'],
  organisation: ['団体名', 'Organisation'],
  sans: ['サーバー名・アドレス', 'Server names'],
  sections: ['変更した区分', 'Sections'],
  rolledForwardFrom: ['引き継いだ版', 'Rolled forward from'],
  diff: ['差分', 'Diff'],
  role: ['権限', 'Role'],
  known: ['既知のアカウント', 'Known account'],
  sources: ['接続元', 'Sources'],
  until: ['期限', 'Until'],
  account: ['アカウント', 'Account'],
  failures: ['失敗回数', 'Failures'],
  max: ['上限', 'Maximum'],
  otherSessionsEnded: ['終了した他のセッション', 'Other sessions ended'],
  origin: ['送信元オリジン', 'Origin'],
  method: ['メソッド', 'Method'],
  rows: ['行数', 'Rows'],
  filter: ['絞り込み条件', 'Filter'],
  serials: ['シリアル番号一覧', 'Serials'],
  assigned: ['割り当て済み', 'Assigned'],
  unassigned: ['未割り当て', 'Unassigned'],
  tokenType: ['トークン種別', 'Token type'],
  counter: ['カウンター', 'Counter'],
  drift: ['ずれ', 'Drift'],
  address: ['アドレス', 'Address'],
  cause: ['原因', 'Cause'],
  userAgent: ['ユーザーエージェント', 'User agent'],
  digest: ['ダイジェスト', 'Digest'],
  host: ['端末名', 'Host'],
  packages: ['パッケージ数', 'Packages'],
  files: ['ファイル数', 'Files'],
  requestId: ['要求ID', 'Request ID'],
  failing: ['不適合の項目', 'Failing checks'],
  why: ['理由', 'Why'],
  collectedAt: ['収集日時', 'Collected at'],
  maxIdleMinutes: ['画面ロックまでの分数', 'Idle minutes to lock'],
  fingerprint: ['指紋(SHA-256)', 'Fingerprint (SHA-256)'],
  oldFingerprint: ['旧証明書の指紋', 'Old certificate fingerprint'],
  newFingerprint: ['新証明書の指紋', 'New certificate fingerprint'],
  notAfter: ['有効期限', 'Valid until'],
  hosts: ['ホスト名', 'Host names'],
  captureMs: ['収集時間(ミリ秒)', 'Capture (ms)'],
  bytes: ['バイト数', 'Bytes'],
  scope: ['収集範囲', 'Scope'],
  // 申請 → 上長承認 (usb.application_*, admin.application_*)
  ref: ['申請番号', 'Reference'],
  hours: ['期間(時間)', 'Period (hours)'],
  status: ['結果', 'Result'],
  comment: ['コメント', 'Comment'],
  applicationId: ['申請ID(端末)', 'Application id (terminal)'],
  applicant: ['申請者', 'Applicant'],
  grantId: ['一時許可ID', 'Exception id'],
  pending: ['未処理の申請', 'Pending applications'],
  // issue 17: retention (admin.archive_*, admin.events_deleted, admin.retention_set)
  archive: ['アーカイブ', 'Archive'],
  families: ['種別', 'Families'],
  manifestSha256: ['マニフェストSHA-256', 'Manifest SHA-256'],
  family: ['種別', 'Family'],
  days: ['日数', 'Days'],
  // issue 17: delivery (agent.events_dropped, agent.gap_filled, agent.drop_*, console.disk_full)
  ranges: ['連番の範囲', 'Seq ranges'],
  hashes: ['破棄したイベントのハッシュ', 'Hashes of the dropped events'],
  byType: ['種類別の件数', 'Count by type'],
  cap: ['未送信の上限', 'Outbox cap'],
  notAppended: ['記録しなかった件数(種類別)', 'Not recorded (by type)'],
  closesGaps: ['解消した欠落', 'Gaps closed'],
  since: ['開始', 'Since'],
  refusedBatches: ['拒否した送信', 'Uploads refused'],
  refusedEvents: ['拒否したイベント数', 'Events refused'],
  freeBytes: ['空き容量(バイト)', 'Free bytes'],
  reserveBytes: ['予約容量(バイト)', 'Reserved bytes'],
  // the console's folding (protocol/event-data.ts: open objects)
  repeated: ['繰り返し回数', 'Repeated'],
  firstSeen: ['初回', 'First seen'],
  folded: ['まとめた件数', 'Folded'],
};

export function fieldLabel(key: string, L: TextLang): string {
  return Object.hasOwn(FIELD_LABELS, key) ? pick(FIELD_LABELS[key]!, L) : safeText(key, 64);
}

export interface EventField {
  key: string;
  label: string;
  /** Display text (safeText, bounded); nested values as compact JSON. */
  value: string;
}

/** Most fields one detail table shows (event data may have up to thousands of keys). */
export const FIELDS_MAX = 200;
const VALUE_MAX = 1024;

/** The data of an event as labelled rows, in the data's own order; never throws. */
export function eventFields(data: unknown, L: TextLang): EventField[] {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return [];
  const out: EventField[] = [];
  for (const key of Object.keys(data)) {
    if (out.length >= FIELDS_MAX) break;
    const raw: unknown = (data as Record<string, unknown>)[key];
    out.push({ key: safeText(key, 64), label: fieldLabel(key, L), value: displayValue(raw, L) });
  }
  return out;
}

function displayValue(x: unknown, L: TextLang): string {
  if (x === null || x === undefined) return '-';
  if (typeof x === 'boolean') return x ? J(L, 'はい', 'yes') : J(L, 'いいえ', 'no');
  if (typeof x === 'string') return safeText(x, VALUE_MAX);
  if (typeof x === 'number' || typeof x === 'bigint') return String(x);
  let json: string;
  try {
    json = JSON.stringify(x) ?? '';
  } catch {
    json = '[?]'; // too deep or cyclic: the raw JSON view still has it
  }
  return safeText(json, VALUE_MAX);
}
