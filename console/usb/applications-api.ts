/**
 * Routes of 申請 → 上長承認 (issue 15): the agent's GET /api/agent/usb/applications (its decided
 * applications, so it can tell the applicant once) and the web page (console/web/pages/applications.ts).
 */
import { RateLimiter, tooManyRequests, type RateLimit } from '../core/limits.js';
import { HttpError, type ConsoleContext, type Route } from '../module.js';
import { applicationPageRoutes } from '../web/pages/applications.js';
import { toRoute } from '../web/web.js';
import { decisionsForAgent } from './applications-store.js';

/** An agent asks with its exception poll (every exceptionPollSeconds) and on plug: 20 at once, then 1 a second. */
export const APPLICATION_ROUTE_LIMIT: RateLimit = { burst: 20, perSecond: 1 };

export function applicationRoutes(ctx: ConsoleContext): Route[] {
  const asks = new RateLimiter(APPLICATION_ROUTE_LIMIT);
  return [
    {
      method: 'GET',
      path: '/api/agent/usb/applications',
      auth: 'agent',
      handle(req) {
        if (!req.agentId) throw new HttpError(401, 'client_certificate_required', 'agent certificate required');
        const now = Date.now();
        if (!asks.take(req.agentId, now)) throw tooManyRequests(asks.retryAfterSeconds(req.agentId, now), 'application polls from this terminal');
        return { status: 200, json: decisionsForAgent(ctx, req.agentId) };
      },
    },
    ...applicationPageRoutes.map((s) => toRoute(ctx, s)),
  ];
}
