/**
 * Windows: runs sekimori-pipebroker.exe (pipe-broker.c) and serves its requests (user-pipe.ts
 * frames) with the local API's user routes; and the client side `sekimori-agent apply` uses.
 * Fail closed: while the broker is not running, the user pipe does not exist and nothing is
 * served. A broker that dies is restarted with backoff (user-pipe.ts restartDelayMs); the outage
 * is reported once (onDown) until the broker is ready again (onUp).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import type { ConsoleReply, LogLevel } from '../../capability.js';
import { answerFrame, BROKER_MAX_FRAME, frame, FrameReader, parseBrokerFrame, parseClientAnswer, parseClientRequest, restartDelayMs, USER_PIPE_MAX_BODY, type UserPipeRequest, type WindowsPeer } from './user-pipe.js';

export const BROKER_NAME = 'sekimori-pipebroker.exe';
/** Requests being answered at once (the broker has 8 instances; a margin for answers in flight). */
const MAX_IN_FLIGHT = 16;
/** A broker up this long counts as healthy again (the backoff starts over). */
const HEALTHY_MS = 60_000;

export type UserPipeHandler = (req: UserPipeRequest, peer: WindowsPeer) => Promise<ConsoleReply>;

export interface BrokerOptions {
  pipe: string;
  handle: UserPipeHandler;
  log: (level: LogLevel, m: string) => void;
  /** The broker (default: beside the agent's executable; SEKIMORI_PIPEBROKER overrides). */
  helper?: string;
  /** Once per outage: the broker exited or could not start. */
  onDown?: (detail: { code: number | null; failures: number; message: string }) => void;
  onUp?: (detail: { pid: number }) => void;
}

export function brokerPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.SEKIMORI_PIPEBROKER ?? join(dirname(process.execPath), BROKER_NAME);
}

/** SEKIMORI_PIPEBROKER_RESTART_MS: the shortest wait before a restart (the wine test widens the outage to observe it), at most 5 min. */
export function restartFloorMs(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number(env.SEKIMORI_PIPEBROKER_RESTART_MS ?? 0);
  return Number.isSafeInteger(n) && n > 0 ? Math.min(n, 300_000) : 0;
}

export class UserPipeBroker {
  private child: ChildProcess | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private failures = 0;
  private downReported = false;
  private startedAt = 0;
  private inFlight = 0;
  ready = false;

  constructor(private readonly o: BrokerOptions) {}

  start(): void {
    this.stopped = false;
    this.launch();
  }

  private launch(): void {
    this.timer = null;
    if (this.stopped) return;
    const helper = this.o.helper ?? brokerPath();
    let child: ChildProcess;
    try {
      child = spawn(helper, [this.o.pipe], { stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
    } catch (e) {
      return this.down(null, (e as Error).message);
    }
    this.child = child;
    this.startedAt = Date.now();
    const reader = new FrameReader(BROKER_MAX_FRAME);
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => {
      if (stderr.length < 1000) stderr += d;
    });
    child.stdin?.on('error', () => {}); // a dead broker's stdin: its exit is handled below
    child.stdout?.on('data', (chunk: Buffer) => {
      for (const f of reader.push(chunk)) this.onFrame(child, f);
      if (reader.broken) {
        this.o.log('error', 'user pipe: the broker sent an oversized frame; restarting it');
        child.kill();
      }
    });
    child.on('error', (e) => {
      if (this.child === child) this.exited(child, null, e.message);
    });
    child.on('exit', (code) => this.exited(child, code, stderr.trim()));
  }

  private onFrame(child: ChildProcess, f: Buffer): void {
    const x = parseBrokerFrame(f);
    if (!x) {
      this.o.log('warn', 'user pipe: malformed frame from the broker ignored');
      return;
    }
    if (x.kind === 'ready') {
      this.ready = true;
      this.downReported = false;
      this.o.log('info', `user pipe ${this.o.pipe} served by broker pid ${x.pid}`);
      this.o.onUp?.({ pid: x.pid });
      return;
    }
    const answer = (r: ConsoleReply) => {
      if (child.exitCode === null && child.stdin?.writable) child.stdin.write(answerFrame(x.id, r));
    };
    const req = parseClientRequest(x.body);
    if (!req) return answer({ status: 400, body: { error: 'malformed_request', message: '要求の形式が正しくありません / malformed request' } });
    if (this.inFlight >= MAX_IN_FLIGHT) return answer({ status: 503, body: { error: 'busy', message: '混雑しています。しばらくしてからお試しください / busy; try again shortly' } });
    this.inFlight++;
    void Promise.resolve()
      .then(() => this.o.handle(req, x.peer))
      .then(answer, (e: Error) => answer({ status: 500, body: { error: 'internal', message: e.message } }))
      .finally(() => this.inFlight--);
  }

  private exited(child: ChildProcess, code: number | null, message: string): void {
    if (this.child !== child) return;
    this.child = null;
    this.ready = false;
    if (Date.now() - this.startedAt >= HEALTHY_MS) this.failures = 0;
    this.down(code, message);
  }

  private down(code: number | null, message: string): void {
    this.ready = false;
    if (this.stopped) return;
    const delay = Math.max(restartFloorMs(), restartDelayMs(this.failures));
    this.failures++;
    this.o.log('error', `user pipe: broker not running (exit ${code ?? '-'}${message ? `: ${message}` : ''}); applications refused; restart in ${delay} ms`);
    if (!this.downReported) {
      this.downReported = true;
      this.o.onDown?.({ code, failures: this.failures, message: message.slice(0, 500) });
    }
    this.timer = setTimeout(() => this.launch(), delay);
    this.timer.unref();
  }

  stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const c = this.child;
    this.child = null;
    this.ready = false;
    if (!c || c.exitCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, 5_000);
      c.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      c.kill();
    });
  }
}

/**
 * Client: one request on the user pipe, one answer (bounded by `timeoutMs`). Rejects with
 * ENOENT-like errors when the pipe does not exist (the broker or the agent is not running).
 */
export function userPipeRequest(pipe: string, method: 'GET' | 'POST', path: string, body: unknown, timeoutMs = 10_000): Promise<ConsoleReply> {
  const payload = Buffer.from(JSON.stringify({ method, path, body: body ?? null }), 'utf8');
  return new Promise((resolve, reject) => {
    if (payload.length > USER_PIPE_MAX_BODY) return reject(new Error('request too large'));
    const sock = connect(pipe);
    const reader = new FrameReader(USER_PIPE_MAX_BODY);
    let done = false;
    const finish = (err: Error | null, r?: ConsoleReply) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      sock.destroy();
      if (err) reject(err);
      else resolve(r!);
    };
    const t = setTimeout(() => finish(new Error('timeout')), timeoutMs);
    sock.on('connect', () => sock.write(frame(payload)));
    sock.on('data', (c: Buffer) => {
      const [f] = reader.push(c);
      if (reader.broken) return finish(new Error('malformed answer'));
      if (!f) return;
      const a = parseClientAnswer(f);
      if (a) finish(null, a);
      else finish(new Error('malformed answer'));
    });
    sock.on('error', (e) => finish(e));
    sock.on('close', () => finish(new Error('closed by the agent without an answer')));
  });
}
