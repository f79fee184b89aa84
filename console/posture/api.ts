/** POST /api/agent/posture (mutual TLS): a terminal's posture document (issue 16). */
import { POSTURE_LIMITS, postureDocumentCheck, type PostureResponse } from '../../protocol/posture.js';
import { agentBody } from '../backbone/body.js';
import { RateLimiter, type RateLimit } from '../core/limits.js';
import { HttpError, type ConsoleContext, type Route } from '../module.js';
import { postureRoutes as posturePageRoutes } from '../web/pages/posture.js';
import { toRoute } from '../web/web.js';
import { storePosture } from './store.js';

/** An agent sends at start, on change (checked each minute) and daily: a burst covers restarts and policy changes. */
export const POSTURE_RATE: RateLimit = { burst: 10, perSecond: 1 / 30 };

export function postureRoutes(ctx: ConsoleContext): Route[] {
  const limiter = new RateLimiter(POSTURE_RATE);
  return [
    {
      method: 'POST',
      path: '/api/agent/posture',
      auth: 'agent',
      maxBody: POSTURE_LIMITS.bodyBytes,
      handle(req) {
        if (!req.agentId) throw new HttpError(401, 'client_certificate_required', 'agent certificate required');
        limiter.check(req.agentId, 'posture reports from this terminal', Date.now());
        const doc = agentBody(postureDocumentCheck, req.json());
        storePosture(ctx, req.agentId, doc, new Date().toISOString());
        const body: PostureResponse = { stored: true };
        return { status: 200, json: body };
      },
    },
    ...posturePageRoutes.map((s) => toRoute(ctx, s)),
  ];
}
