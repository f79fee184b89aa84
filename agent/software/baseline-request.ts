/**
 * "この端末を基準にする": the console's request for this terminal's baseline arrives with the
 * software sync answer; the agent captures the document `sekimori-agent baseline` writes and uploads
 * it (POST /api/agent/software/baseline), where it becomes a pending baseline for an administrator.
 *
 * One request at a time; a request id is handled once (the console repeats an open request on
 * every sync until it has the answer, so an upload that did not get through is retried at the
 * next sync after a pause). The event is written before the upload.
 */
import { BASELINE_MAX_BYTES, baselineRequestCheck, type BaselineRequest, type BaselineUpload, type BaselineUploadResponse } from '../../protocol/api.js';
import { isCleanAbsolutePath, type SoftwareBaselineDocument } from '../../protocol/policy-software.js';
import { safeText } from '../../protocol/text.js';
import type { AgentContext, ConsoleLink } from '../capability.js';

/** Pure: the baseline request in a sync answer, or null (absent, malformed, or naming a path that is not clean and absolute). */
export function baselineRequestOf(body: unknown): BaselineRequest | null {
  const b = (body as { baseline?: unknown } | null)?.baseline;
  if (b === undefined || !baselineRequestCheck.check(b)) return null;
  if (!b.scope.every((p) => isCleanAbsolutePath(p))) return null;
  return { id: b.id, scope: [...new Set(b.scope)] };
}

/** After a failed upload, the same request is tried again at a sync no sooner than this. */
export const BASELINE_RETRY_MS = 60_000;
/** Ids remembered as answered (a console repeating an old id is ignored); bounded. */
const HANDLED_MAX = 64;

export interface BaselineDeps {
  emit: AgentContext['emit'];
  link: () => ConsoleLink;
  capture: (scope: string[]) => Promise<SoftwareBaselineDocument>;
  stopped: () => boolean;
  log: (msg: string) => void;
  now?: () => number;
}

type Captured = { doc: SoftwareBaselineDocument; text: string } | { error: string };

export class BaselineRequests {
  private readonly handled: string[] = [];
  private running: string | null = null;
  private retryAt = new Map<string, number>();
  /** A captured document waiting for its upload to get through (so a retry does not capture again). */
  private pending: { id: string; captured: Captured } | null = null;

  constructor(private readonly deps: BaselineDeps) {}

  /** Called with every sync answer's request; returns the work (tracked by the capability) or null. */
  offer(req: BaselineRequest): Promise<void> | null {
    const now = (this.deps.now ?? Date.now)();
    if (this.running !== null || this.handled.includes(req.id) || (this.retryAt.get(req.id) ?? 0) > now || this.deps.stopped()) return null;
    this.running = req.id;
    return this.run(req).finally(() => {
      this.running = null;
    });
  }

  private async run(req: BaselineRequest): Promise<void> {
    let captured = this.pending?.id === req.id ? this.pending.captured : null;
    if (captured === null) {
      const t0 = performance.now();
      try {
        const doc = await this.deps.capture(req.scope);
        const text = JSON.stringify(doc);
        const bytes = Buffer.byteLength(text);
        if (bytes > BASELINE_MAX_BYTES) {
          captured = { error: `baseline of ${bytes} bytes is larger than ${BASELINE_MAX_BYTES}: narrow the folders` };
          this.deps.emit({ type: 'software.baseline_failed', data: { requestId: req.id, stage: 'size', error: captured.error } });
        } else {
          captured = { doc, text };
          this.deps.emit({
            type: 'software.baseline_captured',
            data: { requestId: req.id, packages: doc.packages.length, files: doc.files.length, bytes, captureMs: Math.round(performance.now() - t0), scope: req.scope.map((s) => safeText(s, 4096)) },
          });
        }
      } catch (e) {
        captured = { error: safeText(`capture failed: ${(e as Error).message ?? String(e)}`, 1024) };
        this.deps.emit({ type: 'software.baseline_failed', data: { requestId: req.id, stage: 'capture', error: captured.error } });
      }
      this.pending = { id: req.id, captured };
    }
    const body: BaselineUpload = 'error' in captured ? { requestId: req.id, error: captured.error } : { requestId: req.id, document: captured.doc as unknown as Record<string, unknown> };
    let reply;
    try {
      reply = await this.deps.link().request('POST', '/api/agent/software/baseline', body, 120_000);
    } catch {
      this.later(req.id); // unreachable: the console asks again at a later sync
      return;
    }
    if (reply.status === 200 || reply.status === 400 || reply.status === 404 || reply.status === 409) {
      // Answered (stored / failed), refused as invalid (the console closed the request and says why), or no longer open.
      const status = reply.status === 200 ? (reply.body as Partial<BaselineUploadResponse> | null)?.status : null;
      if (reply.status !== 200) {
        const code = (reply.body as { error?: unknown } | null)?.error;
        this.deps.emit({ type: 'software.baseline_failed', data: { requestId: req.id, stage: 'upload', error: safeText(`console answered ${reply.status} ${typeof code === 'string' ? code : ''}`, 1024) } });
      }
      this.deps.log(`software: baseline request ${req.id} answered (${reply.status}${status ? ' ' + status : ''})`);
      this.done(req.id);
      return;
    }
    // 429/503/other: keep the document, try again at a later sync.
    this.later(req.id);
  }

  private later(id: string): void {
    if (this.retryAt.size >= HANDLED_MAX) this.retryAt.clear(); // a console sending ever new ids costs no memory
    this.retryAt.set(id, (this.deps.now ?? Date.now)() + BASELINE_RETRY_MS);
  }

  private done(id: string): void {
    this.pending = null;
    this.retryAt.delete(id);
    this.handled.push(id);
    if (this.handled.length > HANDLED_MAX) this.handled.shift();
  }
}
