/** HTTP API of the unauthorized-software feature: each agent's quarantine sync and its software inventory. */
import {
  BASELINE_MAX_BYTES,
  baselineUploadCheck,
  MAX_INVENTORY_ENTRIES,
  inventoryDigest,
  softwareInventoryEnvelopeCheck,
  softwareInventoryRequestCheck,
  softwareSyncRequestCheck,
  type InventoryEntry,
  type SoftwareInventoryRequest,
  type SoftwareSyncRequest,
} from '../../protocol/api.js';
import { safeText } from '../../protocol/text.js';
import { agentBody } from '../backbone/body.js';
import { RateLimiter, type RateLimit } from '../core/limits.js';
import { HttpError, type ConsoleContext, type Route } from '../module.js';
import { BaselineRequestError, receiveBaseline, reportInventory, syncAgent } from './store.js';

/**
 * POST /api/agent/software/sync's body, checked by its schema (protocol/api.ts): 400 naming the
 * failing path. Display text is normalised (safeText) before it is stored.
 */
export function parseSync(x: unknown): SoftwareSyncRequest {
  const b = agentBody(softwareSyncRequestCheck, x);
  return {
    quarantine: b.quarantine.map((q) => ({ id: q.id, path: safeText(q.path, 1024), sha256: q.sha256, size: q.size, quarantinedAt: safeText(q.quarantinedAt, 64), rule: safeText(q.rule, 512) })),
    results: b.results.map((r) => ({ id: r.id, ok: r.ok, ...(r.error !== undefined ? { error: safeText(r.error) } : {}) })),
  };
}

/** Largest inventory body: the agent keeps its list below 3 MiB (agent/software/inventory.ts). */
export const INVENTORY_MAX_BODY = 4 * 1024 * 1024;

/**
 * Per terminal: digests are cheap (one every 10 s period is the agent's most), full lists are not
 * (an agent sends one at start and after each package change; a burst covers an upgrade run).
 */
export const INVENTORY_LIMITS: { reports: RateLimit; fullLists: RateLimit } = {
  reports: { burst: 30, perSecond: 0.2 },
  fullLists: { burst: 6, perSecond: 1 / 300 },
};

/**
 * POST /api/agent/software/inventory's body: the envelope first, so that a list of more than
 * MAX_INVENTORY_ENTRIES is 413 before any entry is judged; then the schema (400 naming the path);
 * then the digest, which must be the list's own (400 `digest_mismatch`: nothing stored).
 */
export function parseInventory(x: unknown): { req: SoftwareInventoryRequest; entries: InventoryEntry[] | null } {
  const env = agentBody(softwareInventoryEnvelopeCheck, x);
  if (env.packages && env.packages.length > MAX_INVENTORY_ENTRIES) {
    throw new HttpError(413, 'too_many_packages', `inventory of ${env.packages.length} entries; at most ${MAX_INVENTORY_ENTRIES}`);
  }
  const b = agentBody(softwareInventoryRequestCheck, x);
  const req: SoftwareInventoryRequest = { platform: b.platform, digest: b.digest, total: b.total };
  if (!b.packages) return { req, entries: null };
  if (inventoryDigest(b.packages) !== b.digest) throw new HttpError(400, 'digest_mismatch', 'body.digest: is not the digest of body.packages');
  // Stored as display-safe text; an agent's own safeText makes this a no-op for honest lists.
  const entries = b.packages.map((e) => ({ name: safeText(e.name, 512), version: safeText(e.version, 256), arch: safeText(e.arch, 32) }));
  return { req, entries };
}

/** Baseline uploads per terminal: one per administrator's request, a few retries (a document is up to 12 MiB). */
export const BASELINE_UPLOAD_LIMIT: RateLimit = { burst: 6, perSecond: 1 / 120 };

export function softwareRoutes(ctx: ConsoleContext): Route[] {
  const reports = new RateLimiter(INVENTORY_LIMITS.reports);
  const fullLists = new RateLimiter(INVENTORY_LIMITS.fullLists);
  const baselineUploads = new RateLimiter(BASELINE_UPLOAD_LIMIT);
  return [
    {
      method: 'POST',
      path: '/api/agent/software/baseline',
      auth: 'agent',
      maxBody: BASELINE_MAX_BYTES + 64 * 1024,
      handle(req) {
        if (!req.agentId) throw new HttpError(401, 'client_certificate_required', 'agent certificate required');
        // Before parsing: a flood of 12 MiB bodies costs no JSON work.
        baselineUploads.check(req.agentId, 'baseline uploads from this terminal', Date.now());
        const body = agentBody(baselineUploadCheck, req.json());
        const text = 'document' in body ? JSON.stringify(body.document) : null;
        try {
          return { status: 200, json: receiveBaseline(ctx, req.agentId, body, text) };
        } catch (e) {
          if (e instanceof BaselineRequestError) throw new HttpError(e.status, e.code, e.message);
          throw e;
        }
      },
    },
    {
      method: 'POST',
      path: '/api/agent/software/sync',
      auth: 'agent',
      maxBody: 1024 * 1024,
      handle(req) {
        if (!req.agentId) throw new HttpError(401, 'client_certificate_required', 'agent certificate required');
        return { status: 200, json: syncAgent(ctx, req.agentId, parseSync(req.json())) };
      },
    },
    {
      method: 'POST',
      path: '/api/agent/software/inventory',
      auth: 'agent',
      maxBody: INVENTORY_MAX_BODY,
      handle(req) {
        if (!req.agentId) throw new HttpError(401, 'client_certificate_required', 'agent certificate required');
        const now = Date.now();
        // Before parsing: a flood costs no JSON work.
        reports.check(req.agentId, 'inventory reports from this terminal', now);
        const { req: body, entries } = parseInventory(req.json());
        if (entries !== null) fullLists.check(req.agentId, 'full inventory lists from this terminal', now);
        return { status: 200, json: reportInventory(ctx, req.agentId, body, entries) };
      },
    },
  ];
}
