/**
 * The MFA feature as the console loads it (console/modules.ts): staff TOTP/HOTP enrolment and the
 * authority for every staff user's state (replay and lockout hold across all terminals because
 * they are decided here). Same shape as every feature folder: schema.ts (migrations), store.ts
 * (the only code on its tables, with identity.ts for the Windows names), api.ts (routes), cli.ts.
 */
import type { ConsoleModule } from '../module.js';
import { mfaRoutes } from './api.js';
import { mfaCommand } from './cli.js';
import { mfaIdentityMigrations, mfaMigrations } from './schema.js';

export const mfaModule: ConsoleModule = {
  name: 'mfa',
  migrations: mfaMigrations,
  routes: mfaRoutes,
  commands: { mfa: mfaCommand },
};

/** Migration module of the Windows identity keys (name kept: stored databases track it). */
export const mfaIdentityModule: ConsoleModule = {
  name: 'mfa-identity',
  migrations: mfaIdentityMigrations,
};
