/** The agent's HTTPS link to the console: TLS 1.3, console CA pinned, agent client certificate. */
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request } from 'node:https';
import { PROTOCOL_HEADER, PROTOCOL_VERSION, statedProtocol } from '../protocol/version.js';
import { isObject } from '../protocol/validate.js';
import { ConsoleUnreachableError, type ConsoleLink, type ConsoleReply } from './capability.js';
import { readJsonState, writeJsonState } from './durable.js';

/** A stored offset larger than this is not a clock that is off, it is a broken file. */
const MAX_OFFSET_MS = 366 * 86_400_000;

/** A reply with its headers (the uploader honours Retry-After on 429/503). */
export interface LinkReply extends ConsoleReply {
  headers: IncomingHttpHeaders;
}

export interface LinkOptions {
  consoleUrl: string;
  caPem: string;
  keyPem?: string;
  certPem?: string;
}

/** One request; rejects with ConsoleUnreachableError on network/TLS/timeout failures. */
export function httpsJson(
  agent: Agent | undefined,
  opts: LinkOptions,
  method: 'GET' | 'POST',
  path: string,
  body: unknown,
  timeoutMs: number,
): Promise<LinkReply> {
  const url = new URL(path, opts.consoleUrl);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        agent,
        ca: opts.caPem,
        key: opts.keyPem,
        cert: opts.certPem,
        minVersion: 'TLSv1.3',
        // Every request states the protocol (protocol/version.ts); a console of 0.1.0 ignores it.
        headers: { [PROTOCOL_HEADER]: String(PROTOCOL_VERSION), ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : null;
          } catch {
            // non-JSON body is passed on as text
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, headers: res.headers });
        });
        res.on('error', (e) => reject(new ConsoleUnreachableError(e.message)));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', (e) => reject(new ConsoleUnreachableError(`${url.origin}: ${e.message}`)));
    req.end(payload);
  });
}

export class MutualTlsLink implements ConsoleLink {
  private agent: Agent;
  private opts: Required<LinkOptions>;
  private offsetMs = 0;
  private ok = false;
  private protocol: number | null = null;
  private offsetFile: string | null = null;
  private savedOffsetMs = 0;

  constructor(opts: Required<LinkOptions>) {
    this.opts = opts;
    this.agent = MutualTlsLink.pool(opts);
  }

  private static pool(opts: Required<LinkOptions>): Agent {
    return new Agent({ keepAlive: true, maxSockets: 4, ca: opts.caPem, key: opts.keyPem, cert: opts.certPem, minVersion: 'TLSv1.3' });
  }

  /** A renewed key and certificate (agent/renew.ts): new connections use them; open ones finish and are closed. */
  useCredentials(pair: { keyPem: string; certPem: string }): void {
    const old = this.agent;
    this.opts = { ...this.opts, keyPem: pair.keyPem, certPem: pair.certPem };
    this.agent = MutualTlsLink.pool(this.opts);
    setTimeout(() => old.destroy(), 30_000).unref();
  }

  /** The protocol the console stated in its last answer (none = 0.1.0 = 1); null before any answer or when unreadable. */
  consoleProtocol(): number | null {
    return this.protocol;
  }

  async request(method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = 15_000): Promise<LinkReply> {
    try {
      const r = await httpsJson(this.agent, this.opts, method, path, body, timeoutMs);
      this.ok = true;
      this.protocol = statedProtocol(r.headers[PROTOCOL_HEADER]);
      return r;
    } catch (e) {
      this.ok = false;
      throw e;
    }
  }

  /** Records the console clock from a heartbeat reply, corrected for half the round trip. */
  observeServerTime(serverTime: string, sentAt: number, receivedAt: number): void {
    const server = Date.parse(serverTime);
    if (Number.isNaN(server)) return;
    this.offsetMs = server + (receivedAt - sentAt) / 2 - receivedAt;
    // Kept on disk when it moved by more than a second: an agent restarted while the console is away
    // (offline TOTP, exception windows) must not fall back to a local clock hours off.
    if (this.offsetFile && Math.abs(this.offsetMs - this.savedOffsetMs) > 1_000) {
      try {
        writeJsonState(this.offsetFile, { offsetMs: Math.round(this.offsetMs), measuredAt: new Date(server).toISOString() });
        this.savedOffsetMs = this.offsetMs;
      } catch {
        // the next heartbeat tries again; the offset in memory is right meanwhile
      }
    }
  }

  /**
   * The console clock offset last measured (STATE/clock.json), until a heartbeat measures it again.
   * A file that is absent, unreadable or absurd (over a year) leaves the local clock.
   */
  keepOffsetIn(path: string): void {
    this.offsetFile = path;
    const saved = readJsonState(path);
    const ms = isObject(saved) ? saved.offsetMs : undefined;
    if (typeof ms === 'number' && Number.isFinite(ms) && Math.abs(ms) <= MAX_OFFSET_MS) {
      this.offsetMs = ms;
      this.savedOffsetMs = ms;
    }
  }

  consoleNow(): Date {
    return new Date(Date.now() + this.offsetMs);
  }

  reachable(): boolean {
    return this.ok;
  }

  close(): void {
    this.agent.destroy();
  }
}
