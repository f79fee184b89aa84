/**
 * Console sync of the software capability: the terminal's quarantine goes up, the restore
 * requests administrators made come back, and their results go up with the next sync. The
 * installed-software inventory goes up on the same period (inventory.ts decides when and what).
 */
import type { BaselineRequest, SoftwareInventoryRequest, SoftwareInventoryResponse, SoftwareSyncRequest, SoftwareSyncResponse } from '../../protocol/api.js';
import { safeText } from '../../protocol/text.js';
import type { ConsoleLink } from '../capability.js';
import { baselineRequestOf } from './baseline-request.js';
import { INVENTORY_FULL_RETRY_MS, inventoryReport, inventoryStep, maySendFull, retryAfterMs, type InventoryReport, type InventorySyncState } from './inventory.js';
import type { InstalledProgram, QuarantineRecord } from './platform.js';

type Results = SoftwareSyncRequest['results'];

/** Pure: what the terminal tells the console (the newest 1000 quarantined files, up to 100 results). */
export function syncRequest(items: readonly QuarantineRecord[], results: Results): SoftwareSyncRequest {
  return {
    quarantine: items
      .slice(-1000)
      .map((r) => ({ id: r.id, path: safeText(r.originalPath, 1024), sha256: r.sha256, size: r.size, quarantinedAt: r.quarantinedAt, rule: safeText(r.rule, 512) })),
    results,
  };
}

/** Quarantine ids are UUIDs (linux/actions.ts, windows/): the only shape the sync request may carry back. */
const QUARANTINE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Pure: the ids to restore from the console's answer (at most 100); null when the answer has no
 * list. Anything but a quarantine id is skipped: it names no record, and its result would make the
 * console refuse every later sync request (result ids must be UUIDs), so the quarantine would never
 * be reported again.
 */
export function restoreIds(body: unknown): string[] | null {
  const restore = (body as Partial<SoftwareSyncResponse> | null)?.restore;
  if (!Array.isArray(restore)) return null;
  return restore.slice(0, 100).filter((id): id is string => typeof id === 'string' && QUARANTINE_ID.test(id));
}

export class SoftwareSync {
  private results: Results = [];
  private syncing = false;
  private report: InventoryReport | null = null;
  private platform = 'linux';
  private inventorySyncing = false;
  readonly inventory: InventorySyncState = { latest: null, confirmed: null, confirmedAt: 0, fullNotBefore: 0, notBefore: 0 };

  constructor(
    private readonly link: () => ConsoleLink,
    private readonly quarantined: () => QuarantineRecord[],
    private readonly restore: (id: string, by: string) => { ok: boolean; error?: string },
    private readonly stopped: () => boolean,
    /** "この端末を基準にする": a baseline request the console's answer carried (baseline-request.ts). */
    private readonly onBaseline: (req: BaselineRequest) => void = () => undefined,
  ) {}

  /** One exchange; again at once while the console keeps sending restore requests (each round restores up to 100). */
  async run(): Promise<void> {
    for (let round = 0; round < 100; round++) {
      if (!(await this.once())) break;
    }
    await this.syncInventory();
  }

  /**
   * The installed-software list as just read (the capability calls this at start and after every
   * change the package watch saw); it goes to the console with the next sync.
   */
  inventoryChanged(programs: ReadonlyMap<string, InstalledProgram>, platform: string): void {
    this.report = inventoryReport(programs.values());
    this.platform = /^[a-z0-9-]{1,32}$/.test(platform) ? platform : 'unknown';
    this.inventory.latest = this.report.digest;
  }

  /** Digest first; the full list only when the console does not hold this digest. */
  async syncInventory(now = Date.now()): Promise<void> {
    const report = this.report;
    if (!report || this.inventorySyncing || this.stopped() || inventoryStep(this.inventory, now) === 'none') return;
    this.inventorySyncing = true;
    try {
      const base: SoftwareInventoryRequest = { platform: this.platform, digest: report.digest, total: report.total };
      const first = await this.inventoryRequest(base, now);
      if (first === 'unknown' && maySendFull(this.inventory, now)) {
        const full = await this.inventoryRequest({ ...base, packages: report.entries }, now);
        if (full !== 'stored') this.inventory.fullNotBefore = now + INVENTORY_FULL_RETRY_MS;
      }
    } finally {
      this.inventorySyncing = false;
    }
  }

  private async inventoryRequest(body: SoftwareInventoryRequest, now: number): Promise<SoftwareInventoryResponse['status'] | null> {
    let reply;
    try {
      reply = await this.link().request('POST', '/api/agent/software/inventory', body, 30_000);
    } catch {
      return null; // unreachable: the next period asks again
    }
    if (reply.status === 429 || reply.status === 503) {
      this.inventory.notBefore = now + retryAfterMs(reply.headers?.['retry-after']);
      return null;
    }
    // A console without this route (older), or one refusing us: ask again later, not every period.
    if (reply.status !== 200 && body.packages === undefined) this.inventory.notBefore = now + INVENTORY_FULL_RETRY_MS;
    const status = reply.status === 200 ? (reply.body as Partial<SoftwareInventoryResponse> | null)?.status : undefined;
    if (status === 'current' || status === 'stored') {
      this.inventory.confirmed = body.digest;
      this.inventory.confirmedAt = now;
      this.inventory.fullNotBefore = 0;
    }
    return status === 'current' || status === 'stored' || status === 'unknown' ? status : null;
  }

  /** Returns whether the console asked for restores (then another round follows). */
  private async once(): Promise<boolean> {
    if (this.syncing || this.stopped()) return false;
    this.syncing = true;
    try {
      const body = syncRequest(this.quarantined(), this.results.splice(0, 100));
      let reply;
      try {
        reply = await this.link().request('POST', '/api/agent/software/sync', body, 10_000);
      } catch {
        this.results.unshift(...body.results);
        return false; // console unreachable: try again next period
      }
      if (reply.status !== 200) {
        this.results.unshift(...body.results);
        return false;
      }
      const baseline = baselineRequestOf(reply.body);
      if (baseline) this.onBaseline(baseline);
      const ids = restoreIds(reply.body);
      if (ids === null) return false;
      for (const id of ids) {
        const r = this.restore(id, 'console');
        this.results.push({ id, ok: r.ok, ...(r.error ? { error: r.error } : {}) });
      }
      return ids.length > 0;
    } finally {
      this.syncing = false;
    }
  }
}
