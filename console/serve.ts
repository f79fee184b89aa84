/** `sekimori-console serve`: HTTPS servers + periodic module work, until SIGTERM/SIGINT. */
import type { Server } from 'node:https';
import { t } from '../protocol/i18n.js';
import { modules } from './modules.js';
import { openConsole } from './core/context.js';
import { createConsoleServer, createSharedLimiters } from './core/server.js';
import { startCheckpointer } from './core/checkpointer.js';
import { consoleLog } from './core/log.js';

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(listen);
  if (!m || Number(m[2]) > 65535) throw new Error(`--listen must be HOST:PORT, got ${listen}`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/**
 * Where the privacyIDEA-compatible port listens: `off`, an explicit HOST:PORT, or (undefined) the
 * default — the main port's host and port + 1 (8443 → 8444; an ephemeral main port gets an
 * ephemeral one). Returns null for off.
 */
export function validateListen(listen: string, flag: string | undefined): { host: string; port: number; explicit: boolean } | null {
  if (flag === 'off') return null;
  if (flag !== undefined) {
    const v = parseListen(flag);
    return { ...v, explicit: true };
  }
  const main = parseListen(listen);
  if (main.port === 65535) return null;
  return { host: main.host, port: main.port === 0 ? 0 : main.port + 1, explicit: false };
}

function listenOn(server: Server, host: string, port: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : port);
    });
  });
}

const shown = (host: string) => (host.includes(':') ? `[${host}]` : host);

export async function serve(dataDir: string, listen: string, validateFlag?: string): Promise<void> {
  const ctx = openConsole(dataDir);
  const log = consoleLog;
  const routes = modules.flatMap((m) => m.routes?.(ctx) ?? []);
  // One set of request limiters for both ports: an address has one budget, whichever port it uses.
  const limiters = createSharedLimiters(ctx);
  const { server } = await createConsoleServer(ctx, routes, log, { kind: 'main', limiters });
  const { host, port } = parseListen(listen);
  const validateAt = validateListen(listen, validateFlag);
  const bound = await listenOn(server, host, port);
  // Printed once both ports are bound (one write), so whoever reads the first line finds the validate URL with it.
  let banner = `${t('管理コンソール起動', 'Sekimori console listening on')} https://${shown(host)}:${bound}\nCA fingerprint: ${ctx.caFingerprint}\n`;

  let validateServer: Server | null = null;
  if (validateAt) {
    const { server: v } = await createConsoleServer(ctx, routes, log, { kind: 'validate', limiters });
    try {
      const vPort = await listenOn(v, validateAt.host, validateAt.port);
      validateServer = v;
      banner += `${t('privacyIDEA 互換 (Windows Credential Provider, TLS 1.2/1.3, クライアント証明書なし)', 'privacyIDEA-compatible (Windows Credential Provider, TLS 1.2/1.3, no client certificate)')} https://${shown(validateAt.host)}:${vPort}/validate/check\n`;
    } catch (e) {
      // An explicit --validate-listen that cannot be bound is an error; the default port being taken is only reported.
      if (validateAt.explicit) {
        server.close();
        ctx.close();
        throw new Error(`--validate-listen ${validateFlag}: ${(e as Error).message}`);
      }
      log(
        t(
          `privacyIDEA 互換ポート ${validateAt.port} を開けません (${(e as Error).message})。--validate-listen HOST:PORT で指定してください`,
          `privacyIDEA-compatible port ${validateAt.port} not opened (${(e as Error).message}); choose one with --validate-listen HOST:PORT`,
        ),
      );
    }
  }

  process.stdout.write(banner);
  const checkpointer = startCheckpointer(ctx.db, log);

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
      checkpointer.stop();
      let open = validateServer ? 2 : 1;
      const closed = () => {
        if (--open === 0) resolve();
      };
      server.close(closed);
      server.closeAllConnections();
      if (validateServer) {
        validateServer.close(closed);
        validateServer.closeAllConnections();
      }
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  ctx.close();
}
