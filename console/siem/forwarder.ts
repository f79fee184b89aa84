/**
 * The SIEM forwarder inside `sekimori-console serve`: reads events after the stored cursor in rid
 * order, writes them as RFC 5424 messages over TLS (RFC 5425 octet counting), and stores the cursor
 * once a batch has settled (./cursor.ts explains the at-least-once window). Reconnects with a
 * bounded backoff; an outage and its end are events (rate-limited). Every wait here is bounded.
 */
import { isIP } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { checkServerIdentity, connect, type TLSSocket } from 'node:tls';
import type { ConsoleContext } from '../module.js';
import { backoffMs, INITIAL_OUTAGE, onFailure, onSuccess, replayFrom, REPLAY_BYTES, REPLAY_MS, settle, type OutageEvent, type OutageState, type Sent, type Written } from './cursor.js';
import { formatEvent, frame } from './format.js';
import { backlog, commitCursor, getConfig, getState, nextBatch, rewindCursor, setStatus, type SiemConfig } from './store.js';

export const BATCH = 500;
const CONNECT_TIMEOUT_MS = 10_000;
/** A write whose callback does not come in this time (receiver stalled) breaks the connection. */
const WRITE_TIMEOUT_MS = 30_000;
const IDLE_POLL_MS = 200;
/** How often the settled cursor is written (adds at most this much to the at-least-once window). */
export const COMMIT_EVERY_MS = 500;

export interface ForwarderOptions {
  log?: (m: string) => void;
  settleMs?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export function targetText(c: { host: string; port: number }): string {
  return `${c.host.includes(':') ? `[${c.host}]` : c.host}:${c.port}`;
}

/** TLS 1.2+ to the SIEM, its certificate checked against the configured CA and name. */
export function connectSiem(cfg: SiemConfig, clientKeyPem: string | null): Promise<TLSSocket> {
  return new Promise<TLSSocket>((resolve, reject) => {
    const sock = connect({
      host: cfg.host,
      port: cfg.port,
      ca: cfg.caPem,
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
      ...(isIP(cfg.name) ? {} : { servername: cfg.name }),
      checkServerIdentity: (_host, cert) => checkServerIdentity(cfg.name, cert),
      ...(cfg.clientCertPem && clientKeyPem ? { cert: cfg.clientCertPem, key: clientKeyPem } : {}),
    });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`TLS connect timed out after ${CONNECT_TIMEOUT_MS} ms`));
    }, CONNECT_TIMEOUT_MS);
    sock.once('secureConnect', () => {
      clearTimeout(timer);
      sock.off('error', fail);
      resolve(sock);
    });
    const fail = (e: Error) => {
      clearTimeout(timer);
      sock.destroy();
      reject(e);
    };
    sock.once('error', fail);
  });
}

/** Writes and waits for the write callback (and 'drain' when the buffer is full), bounded. */
function writeBounded(sock: TLSSocket, buf: Buffer): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let done = false;
    const finish = (e?: Error | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.off('close', onClose);
      if (e) reject(e);
      else resolve();
    };
    const onClose = () => finish(new Error('connection closed during write'));
    const timer = setTimeout(() => finish(new Error(`write not completed within ${WRITE_TIMEOUT_MS} ms`)), WRITE_TIMEOUT_MS);
    sock.once('close', onClose);
    const flushed = sock.write(buf, (e) => {
      if (e) return finish(e);
      if (flushed || sock.writableLength === 0) return finish();
      sock.once('drain', () => finish());
    });
  });
}

export class SiemForwarder {
  private stopped = false;
  private running: Promise<void> | null = null;
  private outage: OutageState = INITIAL_OUTAGE;
  private attempt = 0;
  private readonly log: (m: string) => void;
  private readonly settleMs: number | undefined;
  private readonly consoleHostname = osHostname();

  constructor(
    private readonly ctx: ConsoleContext,
    opts: ForwarderOptions = {},
  ) {
    this.log = opts.log ?? ((m) => process.stderr.write(`[siem] ${new Date().toISOString()} ${m}\n`));
    this.settleMs = opts.settleMs;
  }

  start(): void {
    this.running ??= this.loop().catch((e: unknown) => this.log(`stopped: ${(e as Error).message}`));
  }

  /** Stops and waits (bounded) for the loop to end. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.race([this.running, sleep(5000)]);
  }

  private alive(): boolean {
    return !this.stopped && this.ctx.db.open;
  }

  private emit(ev: OutageEvent, cfg: SiemConfig, error: string): void {
    if (!ev) return;
    const cursor = getState(this.ctx.db).cursorRid;
    const target = targetText(cfg);
    // Written (durable) before the next attempt: the store says when forwarding stopped and resumed.
    if (ev.kind === 'stopped')
      this.ctx.recordEvent({ type: 'console.siem_stopped', data: { target, error: error.slice(0, 1024), cursor, backlog: backlog(this.ctx.db, cursor), suppressed: ev.suppressed } });
    else
      this.ctx.recordEvent({ type: 'console.siem_resumed', data: { target, cursor, backlog: backlog(this.ctx.db, cursor), downSeconds: Math.round(ev.downMs / 1000), failures: ev.failures } });
  }

  private async loop(): Promise<void> {
    while (this.alive()) {
      const cfg = getConfig(this.ctx.db);
      if (!cfg || !cfg.enabled) {
        if (getState(this.ctx.db).state !== 'off') setStatus(this.ctx.db, 'off', null, new Date().toISOString());
        this.outage = INITIAL_OUTAGE;
        await sleep(1000);
        continue;
      }
      try {
        await this.session(cfg);
        this.attempt = 0;
      } catch (e) {
        if (!this.alive()) return;
        const msg = (e as Error).message || String(e);
        const now = Date.now();
        setStatus(this.ctx.db, 'down', msg, new Date(now).toISOString());
        const d = onFailure(this.outage, now);
        this.outage = d.next;
        this.emit(d.emit, cfg, msg);
        const wait = backoffMs(this.attempt++);
        if (this.outage.failures <= 1 || this.attempt % 10 === 0) this.log(`${targetText(cfg)}: ${msg}; retry in ${wait} ms`);
        // Sleep in small steps so `siem off`/set and shutdown are noticed within a second.
        for (let waited = 0; waited < wait && this.alive(); waited += 500) {
          await sleep(Math.min(500, wait - waited));
          if (getConfig(this.ctx.db)?.updatedAt !== cfg.updatedAt) break;
        }
      }
    }
  }

  /** One connection: forward until an error, a config change or shutdown. Throws on failure. */
  private async session(cfg: SiemConfig): Promise<void> {
    const db = this.ctx.db;
    setStatus(db, 'connecting', null, new Date().toISOString());
    const key = cfg.clientKeySealed ? this.ctx.open(cfg.clientKeySealed).toString('utf8') : null;
    const sock = await connectSiem(cfg, key);
    // The console may exit while connected; an open socket must not keep the process alive.
    sock.unref();
    let broken: Error | null = null;
    sock.on('error', (e) => (broken ??= e));
    sock.on('close', () => (broken ??= new Error('connection closed by the SIEM')));
    sock.on('end', () => (broken ??= new Error('connection closed by the SIEM')));
    sock.on('data', () => {}); // RFC 5425 receivers send nothing; read so nothing backs up
    const d = onSuccess(this.outage, Date.now());
    this.outage = d.next;
    this.emit(d.emit, cfg, '');
    setStatus(db, 'forwarding', null, new Date().toISOString());
    this.log(`forwarding to ${targetText(cfg)}`);

    let pending: Written[] = [];
    let sent = getState(db).cursorRid;
    // What this connection wrote recently, for the replay after a failure (bounded by time and bytes).
    let recent: Sent[] = [];
    let lastCommit = 0;
    const commit = (healthy: boolean) => {
      // At most twice a second: each cursor write is an fsync (synchronous = FULL).
      if (Date.now() - lastCommit < COMMIT_EVERY_MS) return;
      lastCommit = Date.now();
      const s = settle(pending, Date.now(), healthy, this.settleMs);
      pending = s.rest;
      if (s.commitRid !== null) commitCursor(db, s.commitRid, s.count, new Date().toISOString());
    };
    try {
      while (this.alive()) {
        if (broken) throw broken;
        commit(true);
        if (getConfig(db)?.updatedAt !== cfg.updatedAt) {
          await this.closeGracefully(sock, pending);
          return;
        }
        const batch = nextBatch(db, sent, BATCH);
        if (batch.length === 0) {
          await sleep(pending.length ? Math.min(IDLE_POLL_MS, 100) : IDLE_POLL_MS);
          continue;
        }
        const opts = { facility: cfg.facility, consoleHostname: this.consoleHostname };
        const buf = Buffer.concat(batch.map((e) => frame(formatEvent(e, opts))));
        await writeBounded(sock, buf);
        if (broken) throw broken;
        const last = batch[batch.length - 1]!.rid;
        const at = Date.now();
        pending.push({ rid: last, count: batch.length, at });
        recent.push({ fromRid: sent, bytes: buf.length, at });
        let kept = 0;
        let bytes = 0;
        for (let i = recent.length - 1; i >= 0 && (at - recent[i]!.at <= REPLAY_MS || bytes < REPLAY_BYTES); i--) (kept++, (bytes += recent[i]!.bytes));
        if (kept < recent.length) recent = recent.slice(recent.length - kept);
        sent = last;
      }
      if (this.ctx.db.open) await this.closeGracefully(sock, pending);
    } catch (e) {
      sock.destroy();
      // Nothing of `pending` is committed, and what the SIEM may not have read yet is sent again.
      const back = replayFrom(recent, Date.now());
      if (back !== null && this.ctx.db.open) rewindCursor(db, back, new Date().toISOString());
      throw e;
    }
  }

  /**
   * Ends the TLS session and waits (bounded) for the SIEM to close its side; a clean close means it
   * read everything we wrote (a peer closing with unread data resets the connection instead).
   */
  private async closeGracefully(sock: TLSSocket, pending: Written[]): Promise<void> {
    let error: Error | null = null;
    sock.on('error', (e) => (error ??= e));
    const closed = new Promise<boolean>((r) => {
      sock.once('close', (hadError) => r(!hadError));
      setTimeout(() => r(false), 3000).unref();
    });
    sock.end();
    const clean = (await closed) && error === null;
    if (clean && pending.length && this.ctx.db.open) {
      const s = settle(pending, Number.MAX_SAFE_INTEGER, true, 0);
      if (s.commitRid !== null) commitCursor(this.ctx.db, s.commitRid, s.count, new Date().toISOString());
    }
    sock.destroy();
  }
}
