/**
 * The Windows user pipe's frames (pure: no I/O). The broker (pipe-broker.c, run by the agent)
 * owns \\.\pipe\sekimori-user, learns the caller's account from the kernel (its token, via
 * ImpersonateNamedPipeClient) and hands the agent ONE frame per client that it built itself:
 *
 *   broker → agent: u32 LE length, "Q <id> <pid> <session> <SID> <hex of UTF-8 DOMAIN\user>\n" + client bytes
 *                   or "R <broker pid>\n" (ready)
 *   agent → broker: u32 LE length, u32 LE id, answer bytes
 *   client ↔ broker: u32 LE length + JSON, once each way: {method, path, body} → {status, body}
 *
 * The identity is the header line only; the client's bytes follow the first newline and are never
 * read as header. Anything malformed is no frame (the request is refused, never guessed at).
 */
import type { LocalPeer } from '../../capability.js';

/** What one client may send (the broker enforces it too) and what the agent may answer. */
export const USER_PIPE_MAX_BODY = 16 * 1024;
/** A broker frame: header line + body. */
export const BROKER_MAX_FRAME = USER_PIPE_MAX_BODY + 2048;

/** The user pipe beside an agent's own pipe: \\.\pipe\sekimori-agent[-hash] → \\.\pipe\sekimori-user[-hash]. */
export function userPipeName(agentPipe: string): string {
  return agentPipe.replace(/\\sekimori-agent(-[0-9a-f]{16})?$/i, '\\sekimori-user$1');
}

export function frame(payload: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32LE(payload.length);
  return Buffer.concat([len, payload]);
}

/**
 * Splits a byte stream into length-prefixed frames. A length above `max` poisons the reader
 * (`broken`): a peer that lies about lengths is not read further.
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  broken = false;
  constructor(private readonly max: number) {}

  push(chunk: Buffer): Buffer[] {
    if (this.broken) return [];
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Buffer[] = [];
    // Bounded: each turn consumes at least 4 bytes.
    while (this.buf.length >= 4) {
      const n = this.buf.readUInt32LE(0);
      if (n > this.max) {
        this.broken = true;
        this.buf = Buffer.alloc(0);
        return out;
      }
      if (this.buf.length < 4 + n) break;
      out.push(this.buf.subarray(4, 4 + n));
      this.buf = this.buf.subarray(4 + n);
    }
    return out;
  }

  /** Bytes held for an unfinished frame. */
  get pending(): number {
    return this.buf.length;
  }
}

/** The peer of a Windows request: the SID stands where Linux has the uid. */
export interface WindowsPeer extends LocalPeer {
  sid: string | null;
  user: string | null;
  /** Terminal Services session of the client (null: unknown — wine reports none). */
  session: number | null;
}

export type BrokerFrame = { kind: 'ready'; pid: number } | { kind: 'request'; id: number; peer: WindowsPeer; body: Buffer };

const READY = /^R (\d{1,10})$/;
const REQUEST = /^Q (\d{1,10}) (\d{1,10}) (\d{1,10}) (S-1-\d{1,20}(?:-\d{1,10}){0,15}|-) ((?:[0-9a-f]{2}){1,512}|-)$/;
const HEADER_MAX = 1600;
const u32 = (s: string): number | null => {
  const n = Number(s);
  return Number.isSafeInteger(n) && n <= 0xffff_ffff ? n : null;
};

/**
 * The account as LookupAccountSid named it ("DOMAIN\user" or "user"), or null: valid UTF-8, at most
 * 256 characters, no control characters (NUL included), at most one backslash, both parts non-empty.
 */
export function accountOf(hex: string): string | null {
  if (hex === '-' || hex.length % 2 !== 0) return null;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(hex, 'hex'));
  } catch {
    return null;
  }
  if (text.length === 0 || text.length > 256 || /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/.test(text)) return null;
  const parts = text.split('\\');
  if (parts.length > 2 || parts.some((p) => p.trim() === '')) return null;
  return text;
}

/** One broker frame, or null when it is not exactly one of the two shapes. */
export function parseBrokerFrame(f: Buffer): BrokerFrame | null {
  const nl = f.subarray(0, HEADER_MAX).indexOf(0x0a);
  if (nl < 0) return null;
  const head = f.subarray(0, nl).toString('latin1');
  const body = f.subarray(nl + 1);
  const r = READY.exec(head);
  if (r) return body.length === 0 ? { kind: 'ready', pid: Number(r[1]) } : null;
  const m = REQUEST.exec(head);
  if (!m) return null;
  const [id, pid, session] = [u32(m[1]!), u32(m[2]!), u32(m[3]!)];
  if (id === null || id === 0 || pid === null || session === null || body.length > USER_PIPE_MAX_BODY) return null;
  const sid = m[4] === '-' ? null : m[4]!;
  const user = sid === null ? null : accountOf(m[5]!);
  // Both or neither: an account without its SID (or the reverse) identifies nobody.
  const known = sid !== null && user !== null;
  return {
    kind: 'request',
    id,
    body,
    peer: { uid: null, pid: pid === 0 ? null : pid, sid: known ? sid : null, user: known ? user : null, session: session === 0xffff_ffff ? null : session },
  };
}

export function answerFrame(id: number, answer: { status: number; body: unknown }): Buffer {
  let payload = Buffer.from(JSON.stringify(answer), 'utf8');
  if (payload.length > USER_PIPE_MAX_BODY) payload = Buffer.from(JSON.stringify({ status: 500, body: { error: 'answer_too_large' } }));
  const idb = Buffer.alloc(4);
  idb.writeUInt32LE(id >>> 0);
  return frame(Buffer.concat([idb, payload]));
}

export interface UserPipeRequest {
  method: 'GET' | 'POST';
  path: string;
  body: unknown;
}

/** The client's request (what `sekimori-agent apply` sends), or null. */
export function parseClientRequest(body: Buffer): UserPipeRequest | null {
  if (body.length === 0 || body.length > USER_PIPE_MAX_BODY) return null;
  let x: unknown;
  try {
    x = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    return null;
  }
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return null;
  const o = x as Record<string, unknown>;
  if ((o.method !== 'GET' && o.method !== 'POST') || typeof o.path !== 'string' || !/^\/[a-z0-9/_-]{1,64}$/.test(o.path)) return null;
  return { method: o.method, path: o.path, body: o.body ?? null };
}

/** The answer the client reads back, or null. */
export function parseClientAnswer(payload: Buffer): { status: number; body: unknown } | null {
  try {
    const x = JSON.parse(payload.toString('utf8')) as { status?: unknown; body?: unknown };
    return typeof x === 'object' && x !== null && Number.isSafeInteger(x.status) ? { status: x.status as number, body: x.body ?? null } : null;
  } catch {
    return null;
  }
}

/** Restart delay after the broker's n-th consecutive failure (1 s doubling, at most 60 s). */
export function restartDelayMs(failures: number): number {
  return Math.min(60_000, 1000 * 2 ** Math.min(Math.max(0, failures), 6));
}
