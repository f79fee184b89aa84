/**
 * Terminal posture (issue 16) as the console loads it (console/modules.ts): schema.ts (migrations),
 * store.ts (the only code on its tables; latestPostures for the 自己点検 report), api.ts (the agent
 * route), cli.ts (`posture`); the page is console/web/pages/posture.ts.
 */
import type { ConsoleModule } from '../module.js';
import { postureRoutes } from './api.js';
import { postureCommand } from './cli.js';
import { postureMigrations } from './schema.js';

export const postureModule: ConsoleModule = {
  name: 'posture',
  migrations: postureMigrations,
  routes: postureRoutes,
  commands: { posture: postureCommand },
};
