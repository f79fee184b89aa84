/** HTTP API of the unauthorized-software feature: each agent's quarantine sync. */
import { softwareSyncRequestCheck, type SoftwareSyncRequest } from '../../protocol/api.js';
import { safeText } from '../../protocol/text.js';
import { agentBody } from '../backbone/body.js';
import { HttpError, type ConsoleContext, type Route } from '../module.js';
import { syncAgent } from './store.js';

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

export function softwareRoutes(ctx: ConsoleContext): Route[] {
  return [
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
  ];
}
