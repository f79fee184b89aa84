/**
 * Where an upload's batch check (batch-check.ts: JSON, shapes, hashes, data declarations — about
 * half of the console's CPU per event) runs: in one worker thread beside the console's thread,
 * which meanwhile serves TLS and writes SQLite. Answers come back in order of the requests' ids;
 * the body is handed over, not copied twice.
 *
 * A worker that dies answers its pending checks with 503 + Retry-After (the agents keep their
 * events and send them again) and is started afresh; one that cannot even start three times in a
 * row is given up for checking inline, said once in the log. Inline is also what runs where there
 * is no compiled worker (the tests' in-process consoles on the TypeScript sources).
 */
import { existsSync } from 'node:fs';
import * as sea from 'node:sea';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { HttpError } from '../module.js';
import { checkUpload, type CheckedEvent } from './batch-check.js';

export interface CheckRequest {
  id: number;
  agentId: string;
  body: Uint8Array;
}

export type CheckReply =
  | { id: number; events: CheckedEvent[] }
  | { id: number; refusal: { status: number; code: string; message: string; details: string[] | null } }
  | { id: number; failure: string };

export interface BatchChecker {
  /** The body's checked events, or the HttpError refusing it (400/413), as checkUpload. */
  check(agentId: string, body: Uint8Array): Promise<CheckedEvent[]>;
}

export const inlineChecker: BatchChecker = {
  check: async (agentId, body) => checkUpload(body, agentId),
};

/** The worker's code: its compiled file in dist/, or its bundle inside the executable (scripts/sea/bundle.mjs). */
export type WorkerScript = { file: URL } | { code: string };

const WORKER_KEY = 'console/backbone/batch-check-worker.js';

function workerScript(): WorkerScript | null {
  // Run as code, not from an extracted file: a .js file's module type would depend on package.json files above it.
  if (sea.isSea()) return sea.getAssetKeys().includes(WORKER_KEY) ? { code: sea.getAsset(WORKER_KEY, 'utf8') } : null;
  const file = new URL('./batch-check-worker.js', import.meta.url);
  return existsSync(fileURLToPath(file)) ? { file } : null;
}

/** The worker checker when its compiled code is there (dist/, the executable), else inline. */
export function batchChecker(log: (m: string) => void): BatchChecker {
  const script = workerScript();
  return script ? new WorkerChecker(script, log) : inlineChecker;
}

interface Waiting {
  resolve: (events: CheckedEvent[]) => void;
  reject: (e: unknown) => void;
}

export class WorkerChecker implements BatchChecker {
  private worker: Worker | null = null;
  private answered = false;
  private failedStarts = 0;
  private inline = false;
  private closing = false;
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();

  constructor(
    private readonly script: WorkerScript,
    private readonly log: (m: string) => void,
  ) {}

  check(agentId: string, body: Uint8Array): Promise<CheckedEvent[]> {
    if (this.inline) return inlineChecker.check(agentId, body);
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    // A copy of its own: a small body may share Node's pool buffer, and transferring detaches the whole buffer.
    const own = new Uint8Array(body);
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.postMessage({ id, agentId, body: own } satisfies CheckRequest, [own.buffer]);
    });
  }

  /** Ends the worker (its pending checks are refused with 503). */
  async close(): Promise<void> {
    this.closing = true;
    const w = this.worker;
    if (w) await w.terminate();
  }

  private start(): Worker {
    const w = 'file' in this.script ? new Worker(this.script.file) : new Worker(this.script.code, { eval: true });
    // Never what keeps the console running: the servers do that.
    w.unref();
    this.worker = w;
    this.answered = false;
    w.on('message', (r: CheckReply) => {
      this.answered = true;
      this.failedStarts = 0;
      const waiting = this.waiting.get(r.id);
      if (!waiting) return;
      this.waiting.delete(r.id);
      if ('events' in r) waiting.resolve(r.events);
      else if ('refusal' in r) waiting.reject(new HttpError(r.refusal.status, r.refusal.code, r.refusal.message, r.refusal.details ?? undefined));
      else waiting.reject(new Error(r.failure));
    });
    w.on('error', (e) => this.ended(w, e.message));
    w.on('exit', (code) => this.ended(w, `exit code ${code}`));
    return w;
  }

  private ended(w: Worker, why: string): void {
    if (this.worker !== w) return; // 'error' is followed by 'exit': handled once
    this.worker = null;
    if (!this.closing) {
      if (!this.answered && ++this.failedStarts >= 3) {
        this.inline = true;
        this.log(`batch check: the worker thread failed to start 3 times (${why}); checking inline from now on`);
      } else this.log(`batch check: worker thread ended (${why}); ${this.waiting.size} upload(s) refused with 503, a new worker starts with the next upload`);
    }
    for (const waiting of this.waiting.values()) waiting.reject(new HttpError(503, 'batch_check_restarting', 'the console is restarting its batch check; send again', undefined, { 'retry-after': '1' }));
    this.waiting.clear();
  }
}
