/**
 * The console's HTTP app in-process, for route tests with `app.inject()`: a fresh data folder
 * (`init` as the CLI does), every module's routes, no server started, no socket opened.
 *
 * Agent identity: production takes the client certificate from the TLS socket only. Here the app
 * is built with a test source that reads it from the `x-test-client-certificate` header (a key
 * into certificates this helper issued), and the console's own enrolment/revocation check runs
 * on it. An app built without that option (as serve builds it) ignores the header.
 */
import { X509Certificate, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { initConsole, openConsole, type OpenConsole } from '../../console/core/context.js';
import { buildConsoleApp, type ConsoleAppOptions, type SharedLimiters } from '../../console/core/http-app.js';
import type { ClientCertificate } from '../../console/core/http-request.js';
import { signAgentCsr } from '../../console/core/pki.js';
import { modules } from '../../console/modules.js';
import type { Route } from '../../console/module.js';
import { createSession } from '../../console/web/auth.js';
import { createKeyAndCsr } from '../../protocol/pki.js';

export const TEST_CERT_HEADER = 'x-test-client-certificate';

export interface TestAgent {
  agentId: string;
  /** Headers that present this agent's certificate to the test app. */
  headers: Record<string, string>;
}

export interface WebSession {
  username: string;
  csrf: string;
  /** Cookie + same-origin headers of a browser on this console. */
  headers: Record<string, string>;
}

export interface TestApp {
  app: FastifyInstance;
  ctx: OpenConsole;
  dataDir: string;
  /** What the app logged (internal errors). */
  logs: string[];
  /** inject() with Host: localhost unless given. */
  inject(opts: InjectOptions): Promise<LightMyRequestResponse>;
  /** An agent enrolled as the backbone does (CA-signed certificate, row in agents). */
  enrollAgent(): Promise<TestAgent>;
  /** Presents a certificate the TLS layer would not have verified (not from the console CA). */
  unverifiedCertificate(agentId: string): Record<string, string>;
  revoke(agentId: string): void;
  /** A logged-in web session for a new account of `role` (the init admin is 'admin'). */
  session(role: 'admin' | 'auditor'): WebSession;
  close(): Promise<void>;
}

export interface TestAppOptions {
  kind?: 'main' | 'validate';
  limiters?: SharedLimiters;
  /** false: build the app as serve does (client certificates from the TLS socket only). */
  testCertificates?: boolean;
  /** Routes of a test's own, registered after every module's. */
  routes?: Route[];
}

export async function buildTestApp(opts: TestAppOptions = {}): Promise<TestApp> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sekimori-http-'));
  await initConsole(join(dataDir, 'console'), { sans: [], organisation: 'テスト市' });
  const ctx = openConsole(join(dataDir, 'console'));
  const certificates = new Map<string, ClientCertificate>();
  const logs: string[] = [];
  const routes = [...modules.flatMap((m) => m.routes?.(ctx) ?? []), ...(opts.routes ?? [])];
  const appOptions: ConsoleAppOptions = {
    kind: opts.kind ?? 'main',
    ...(opts.limiters ? { limiters: opts.limiters } : {}),
    ...(opts.testCertificates === false ? {} : { clientCertificate: (req) => certificates.get(String(req.headers[TEST_CERT_HEADER] ?? '')) ?? null }),
  };
  const app = buildConsoleApp(ctx, routes, (m) => logs.push(m), appOptions);
  await app.ready();
  let accounts = 0;

  const present = (cert: ClientCertificate): Record<string, string> => {
    const key = randomUUID();
    certificates.set(key, cert);
    return { [TEST_CERT_HEADER]: key };
  };

  return {
    app,
    ctx,
    dataDir,
    logs,
    inject: (o) => app.inject({ ...o, headers: { host: 'localhost', ...(o.headers as Record<string, string> | undefined) } }),
    async enrollAgent() {
      const agentId = randomUUID();
      const { csrPem } = await createKeyAndCsr(agentId);
      const { certPem, fingerprint } = await signAgentCsr(ctx.ca, csrPem, agentId);
      const now = new Date().toISOString();
      ctx.db.prepare('INSERT INTO agents (id, hostname, cert_fingerprint, enrolled_at, last_seen) VALUES (?, ?, ?, ?, ?)').run(agentId, `pc-${agentId.slice(0, 8)}`, fingerprint, now, now);
      return { agentId, headers: present({ der: new X509Certificate(certPem).raw, authorized: true, authorizationError: null, commonName: agentId }) };
    },
    unverifiedCertificate(agentId) {
      return present({ der: Buffer.from('not a certificate of this CA'), authorized: false, authorizationError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', commonName: agentId });
    },
    revoke(agentId) {
      ctx.db.prepare("UPDATE agents SET status = 'revoked', revoked_at = ? WHERE id = ?").run(new Date().toISOString(), agentId);
    },
    session(role) {
      const username = `${role}${++accounts}`;
      ctx.db
        .prepare('INSERT INTO console_users (username, role, password_hash, totp_secret, created_at) VALUES (?, ?, ?, ?, ?)')
        .run(username, role, 'x', ctx.seal('JBSWY3DPEHPK3PXP'), new Date().toISOString());
      const { token, csrf } = createSession(ctx.db, username);
      return { username, csrf, headers: { cookie: `__Host-sekimori_session=${token}`, origin: 'https://localhost' } };
    },
    async close() {
      await app.close();
      ctx.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
