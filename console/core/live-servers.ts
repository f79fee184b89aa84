/**
 * The HTTPS servers each open console is serving on (both ports), so a renewed server certificate
 * (core/renewal.ts) is served without a restart. Apart from server.ts so that renewal imports no
 * server code (no import circle through context.ts and modules.ts).
 */
import type { Server } from 'node:https';

/** TLS options each server was made with: the renewed certificate is served with the same settings. */
const tlsOptions = new WeakMap<Server, object>();
const liveServers = new WeakMap<object, Set<Server>>();

/** Called by server.ts for every server it makes for `ctx`; forgotten when the server closes. */
export function registerServer(ctx: object, server: Server, tls: object): void {
  tlsOptions.set(server, tls);
  let set = liveServers.get(ctx);
  if (!set) liveServers.set(ctx, (set = new Set()));
  set.add(server);
  server.once('close', () => set.delete(server));
}

/**
 * Serves a renewed server certificate on every port of this console from the next handshake on
 * (Node's setSecureContext; connections already open keep theirs). Returns how many servers took it.
 */
export function serveCertificate(ctx: object, pair: { certPem: string; keyPem: string }): number {
  let n = 0;
  for (const server of liveServers.get(ctx) ?? []) {
    server.setSecureContext({ key: pair.keyPem, cert: pair.certPem, ...(tlsOptions.get(server) ?? {}) });
    n++;
  }
  return n;
}
