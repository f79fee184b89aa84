/**
 * SIEM forwarding (issue 17) as the console loads it (console/modules.ts): schema.ts (migrations),
 * store.ts (the only code on its tables), format.ts (RFC 5424 message, pure), cursor.ts (the
 * forwarder's decisions, pure), forwarder.ts (TLS, RFC 5425 framing), cli.ts (`siem`).
 * The forwarder runs inside `serve`: the first tick starts it; it stops when the console closes.
 */
import type { ConsoleContext, ConsoleModule } from '../module.js';
import { siemCommand } from './cli.js';
import { SiemForwarder } from './forwarder.js';
import { siemMigrations } from './schema.js';

const running = new WeakMap<ConsoleContext, SiemForwarder>();

export const siemModule: ConsoleModule = {
  name: 'siem',
  migrations: siemMigrations,
  commands: { siem: siemCommand },
  tick(ctx) {
    if (running.has(ctx)) return;
    const f = new SiemForwarder(ctx);
    running.set(ctx, f);
    f.start();
  },
};
