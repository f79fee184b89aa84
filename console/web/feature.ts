/**
 * 管理コンソール as the console loads it (console/modules.ts): the administrators' and auditors'
 * web console, server-rendered HTML with strict escaping, served on the console's HTTPS port next
 * to the agent API. schema.ts (migrations), store.ts (accounts and sessions), auth.ts (login),
 * cli.ts (`user`), pages/ (one file per page), queries.ts (the read side and the daily rollup).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ConsoleContext, ConsoleModule, Route } from '../module.js';
import { purgeSessions } from './auth.js';
import { userCommand } from './cli.js';
import { accountRoutes } from './pages/accounts.js';
import { dashboardRoutes } from './pages/dashboard.js';
import { deviceRoutes } from './pages/devices.js';
import { eventRoutes } from './pages/events.js';
import { exceptionRoutes } from './pages/exceptions.js';
import { exportRoutes } from './pages/exports.js';
import { loginRoutes } from './pages/login.js';
import { policyRoutes } from './pages/policy.js';
import { reportRoutes } from './pages/report.js';
import { softwareRoutes } from './pages/software.js';
import { terminalRoutes } from './pages/terminals.js';
import { userRoutes } from './pages/users.js';
import { rollupCatchUp } from './queries.js';
import { webMigrations } from './schema.js';
import { SECURITY_HEADERS, toRoute } from './web.js';

const STATIC_DIR = fileURLToPath(new URL('./static/', import.meta.url));
const STATIC_TYPES: Record<string, string> = { css: 'text/css; charset=utf-8', js: 'text/javascript; charset=utf-8', svg: 'image/svg+xml' };

function staticRoute(): Route {
  const cache = new Map<string, Buffer>();
  return {
    method: 'GET',
    path: /^\/static\/([a-z0-9-]{1,40}\.(?:css|js|svg))$/,
    auth: 'none',
    handle(req) {
      const name = req.params[0]!;
      let body = cache.get(name);
      if (!body) {
        try {
          body = readFileSync(STATIC_DIR + name);
        } catch {
          return { status: 404, headers: { ...SECURITY_HEADERS, 'content-type': 'text/plain; charset=utf-8' }, body: 'not found' };
        }
        cache.set(name, body);
      }
      return { status: 200, headers: { ...SECURITY_HEADERS, 'content-type': STATIC_TYPES[name.split('.').pop()!]!, 'cache-control': 'private, max-age=300' }, body };
    },
  };
}

function routes(ctx: ConsoleContext): Route[] {
  const specs = [...loginRoutes, ...dashboardRoutes, ...eventRoutes, ...terminalRoutes, ...policyRoutes, ...softwareRoutes, ...userRoutes, ...accountRoutes, ...exceptionRoutes, ...deviceRoutes, ...exportRoutes, ...reportRoutes];
  return [staticRoute(), ...specs.map((s) => toRoute(ctx, s))];
}

let lastPurge = 0;

export const webModule: ConsoleModule = {
  name: 'web',
  migrations: webMigrations,
  routes,
  commands: { user: userCommand },
  tick(ctx, now) {
    // Keeps the dashboard's daily counts current without a trigger on events (ingest pays nothing).
    // Small steps within ~25 ms per second, so agents' requests never wait long behind it.
    const until = performance.now() + 25;
    while (performance.now() < until && rollupCatchUp(ctx.db, 5_000) > 0);
    if (now.getTime() - lastPurge > 60_000) {
      purgeSessions(ctx.db, now.getTime());
      lastPurge = now.getTime();
    }
  },
};
