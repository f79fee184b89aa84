/** `sekimori-console serve`: HTTPS server + periodic module work, until SIGTERM/SIGINT. */
import { t } from '../protocol/i18n.js';
import { modules } from './modules.js';
import { openConsole } from './core/context.js';
import { createConsoleServer } from './core/server.js';

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(listen);
  if (!m) throw new Error(`--listen must be HOST:PORT, got ${listen}`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

export async function serve(dataDir: string, listen: string): Promise<void> {
  const ctx = openConsole(dataDir);
  const log = (m: string) => process.stderr.write(`[console] ${new Date().toISOString()} ${m}\n`);
  const routes = modules.flatMap((m) => m.routes?.(ctx) ?? []);
  const server = createConsoleServer(ctx, routes, log);
  const { host, port } = parseListen(listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const bound = typeof addr === 'object' && addr ? addr.port : port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  process.stdout.write(`${t('管理コンソール起動', 'Sekimori console listening on')} https://${shownHost}:${bound}\nCA fingerprint: ${ctx.caFingerprint}\n`);

  const timer = setInterval(() => {
    const now = new Date();
    try {
      ctx.flushRepeated(now.getTime());
    } catch (e) {
      log(`folded events: ${(e as Error).message}`);
    }
    for (const m of modules) {
      try {
        m.tick?.(ctx, now);
      } catch (e) {
        log(`tick ${m.name}: ${(e as Error).message}`);
      }
    }
  }, 1000);
  await new Promise<void>((resolve) => {
    const stop = () => {
      clearInterval(timer);
      server.close(() => resolve());
      server.closeAllConnections();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  ctx.close();
}
