/**
 * The unauthorized-software feature as the console loads it (console/modules.ts): baselines and
 * quarantine. Same shape as every feature folder: schema.ts (migrations), store.ts (the only code
 * on its tables), api.ts (routes), cli.ts; the page is console/web/pages/software.ts.
 */
import type { ConsoleModule } from '../module.js';
import { softwareRoutes } from './api.js';
import { softwareCommand } from './cli.js';
import { softwareMigrations } from './schema.js';

export const softwareModule: ConsoleModule = {
  name: 'software',
  migrations: softwareMigrations,
  routes: softwareRoutes,
  commands: { software: softwareCommand },
};
