/**
 * The backbone feature as the console loads it (console/modules.ts): terminals, enrollment, event
 * upload, heartbeat, policy. Same shape as every feature folder: store.ts (its tables), api.ts
 * (routes), cli.ts; its tables are in the core schema (console/core/schema.ts), so no migrations here.
 */
import type { ConsoleContext, ConsoleModule } from '../module.js';
import { backboneRoutes, heartbeatBuffer, heartbeatSeconds } from './api.js';
import { backboneCommands } from './cli.js';
import { markSilent, onlineNotSeenSince } from './store.js';

/** Terminals that missed 3 heartbeats without saying goodbye become silent, with an alert. */
function tick(ctx: ConsoleContext, now: Date): void {
  heartbeatBuffer(ctx).flush();
  const limit = new Date(now.getTime() - 3 * heartbeatSeconds(ctx) * 1000).toISOString();
  for (const a of onlineNotSeenSince(ctx, limit)) markSilent(ctx, a);
}

export const backboneModule: ConsoleModule = {
  name: 'backbone',
  migrations: [],
  routes: backboneRoutes,
  tick,
  commands: backboneCommands,
};
