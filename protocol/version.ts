/**
 * Versions: the release (shown to people) and the wire protocol (judged by programs).
 *
 * Protocol 1 is release 0.1.0 (commit 0eecc8b), which sent no version at all: a request or answer
 * without the header is protocol 1. Protocol 2 adds the header on every request and answer and
 * certificate renewal (POST /api/agent/cert/renew, /confirm). Each side accepts the previous
 * protocol and its own; an agent older than that is refused with 426 so that it is upgraded rather
 * than misread. Pure: no I/O, no clock.
 */

/** Version reported by agents and the console (kept in step with package.json). */
export const SEKIMORI_VERSION = '0.1.0';

/** Header both programs send on every request and answer (HTTP header names are case-insensitive). */
export const PROTOCOL_HEADER = 'sekimori-protocol';
/** The protocol this release speaks. */
export const PROTOCOL_VERSION = 2;
/** The oldest protocol this release still talks to: the previous release's. */
export const OLDEST_PROTOCOL_VERSION = PROTOCOL_VERSION - 1;
/** Protocol of a peer that sends no header: release 0.1.0. */
export const UNVERSIONED_PROTOCOL = 1;
/** The first protocol whose console renews agent certificates. */
export const RENEWAL_PROTOCOL = 2;

/** Largest version a header may state; anything longer is malformed, not a far-future release. */
const MAX_STATED = 1_000_000;

/**
 * The protocol a header states: absent → 1 (0.1.0 sent none), a plain decimal integer →
 * that number, anything else (repeated header, sign, fraction, 2^53, spaces inside) → null.
 */
export function statedProtocol(header: string | string[] | undefined): number | null {
  if (header === undefined) return UNVERSIONED_PROTOCOL;
  if (Array.isArray(header)) return header.length === 1 ? statedProtocol(header[0]) : null;
  const v = header.trim();
  if (!/^(0|[1-9]\d{0,6})$/.test(v)) return null;
  const n = Number(v);
  return n <= MAX_STATED ? n : null;
}

export type ProtocolVerdict =
  | { ok: true; version: number }
  | { ok: false; version: number | null; reason: 'malformed' | 'too_old' };

/**
 * The console's judgement of an agent's request. A newer agent is accepted: it is the newer side
 * that knows how to talk to an older peer (it leaves out what the older one lacks).
 */
export function judgeAgentProtocol(header: string | string[] | undefined, current = PROTOCOL_VERSION): ProtocolVerdict {
  const version = statedProtocol(header);
  if (version === null) return { ok: false, version: null, reason: 'malformed' };
  if (version < current - 1) return { ok: false, version, reason: 'too_old' };
  return { ok: true, version };
}

/**
 * The agent's judgement of a console's answer: one version older is tolerated (features it lacks
 * are not asked for, see `consoleCan`); older or unreadable is reported, never guessed at.
 */
export function judgeConsoleProtocol(header: string | string[] | undefined, current = PROTOCOL_VERSION): ProtocolVerdict {
  return judgeAgentProtocol(header, current);
}

/** Whether a console speaking `consoleVersion` offers `feature` (optional routes of newer protocols). */
export function consoleCan(consoleVersion: number, feature: 'cert_renewal'): boolean {
  switch (feature) {
    case 'cert_renewal':
      return consoleVersion >= RENEWAL_PROTOCOL;
  }
}

/** The 426 answer's body for a refused agent, Japanese first. */
export function protocolRefusalMessage(v: Extract<ProtocolVerdict, { ok: false }>): { ja: string; en: string } {
  const stated = v.version === null ? '不明' : String(v.version);
  return {
    ja: `端末エージェントの通信プロトコル (版 ${stated}) はこの管理コンソールでは使えません。エージェントを更新してください (対応: ${OLDEST_PROTOCOL_VERSION}〜${PROTOCOL_VERSION})`,
    en: `agent protocol ${v.version === null ? '(unreadable)' : v.version} is not supported by this console; upgrade the agent (supported: ${OLDEST_PROTOCOL_VERSION}-${PROTOCOL_VERSION})`,
  };
}
