/**
 * Certificates renewed before they expire (issue 17).
 *
 * Agents: POST /api/agent/cert/renew over mutual TLS with the current certificate sends a CSR for
 * a key made on the terminal; the console signs it for the same agent id and keeps it as the
 * agent's *next* certificate. Both the current and the next one are accepted (backbone/store.ts
 * agentAuthLookup) until the agent, having stored the new pair durably, calls
 * POST /api/agent/cert/confirm: then only the new one is (event agent.cert_renewed). So the agent
 * never holds no working certificate, whatever crashes when. A revoked agent is refused before
 * either route runs (core/http-request.ts).
 *
 * Console: the tick renews the server certificate (same names, new key) when it enters its
 * renewal window, writes it durably (pki.ts installServerPair), records
 * console.server_cert_renewed, and serves it on every port without a restart (server.ts
 * serveCertificate). Agents trust the CA, so nothing changes for them.
 */
import type { CertRenewResponse } from '../../protocol/renewal.js';
import { certConfirmRequestCheck, certRenewRequestCheck, renewalFrom, renewalState } from '../../protocol/renewal.js';
import { agentBody } from '../backbone/body.js';
import { parseArgs } from 'node:util';
import { t } from '../../protocol/i18n.js';
import { HttpError, withConsole, type CliCommand, type ConsoleContext, type ConsoleModule, type Route } from '../module.js';
import { RateLimiter, tooManyRequests } from './limits.js';
import type { OpenConsole } from './open-console.js';
import { certificateDates, installServerPair, issueServerCert, serverCertHosts, signAgentCsr } from './pki.js';
import { serveCertificate } from './live-servers.js';

/** Renewals per agent: a few in a row (a retry after a lost answer), then one per 15 minutes. */
export const RENEW_LIMIT = { burst: 4, perSecond: 1 / 900 } as const;

function renewRoutes(c: ConsoleContext): Route[] {
  const ctx = c as OpenConsole;
  const limiter = new RateLimiter(RENEW_LIMIT);
  const upsert = ctx.db.prepare(
    'INSERT INTO cert_renewals (agent_id, fingerprint, not_after, issued_at) VALUES (?, ?, ?, ?) ON CONFLICT(agent_id) DO UPDATE SET fingerprint = excluded.fingerprint, not_after = excluded.not_after, issued_at = excluded.issued_at',
  );
  return [
    {
      method: 'POST',
      path: '/api/agent/cert/renew',
      auth: 'agent',
      maxBody: 16 * 1024,
      async handle(req) {
        const agentId = req.agentId!;
        const now = Date.now();
        if (!limiter.take(agentId, now)) throw tooManyRequests(limiter.retryAfterSeconds(agentId, now), 'certificate renewals from this terminal');
        const body = agentBody(certRenewRequestCheck, req.json());
        let signed: { certPem: string; fingerprint: string };
        try {
          signed = await signAgentCsr(ctx.ca, body.csrPem, agentId);
        } catch (e) {
          throw new HttpError(400, 'invalid_csr', (e as Error).message);
        }
        const notAfter = new Date(certificateDates(signed.certPem).notAfter).toISOString();
        // A second renewal before a confirm replaces the first: only the newest next certificate is accepted.
        upsert.run(agentId, signed.fingerprint, notAfter, new Date().toISOString());
        const res: CertRenewResponse = { certPem: signed.certPem, fingerprint: signed.fingerprint, notAfter };
        return { status: 200, json: res };
      },
    },
    {
      method: 'POST',
      path: '/api/agent/cert/confirm',
      auth: 'agent',
      maxBody: 4 * 1024,
      handle(req) {
        const agentId = req.agentId!;
        const now = Date.now();
        if (!limiter.take(agentId, now, 0.25)) throw tooManyRequests(limiter.retryAfterSeconds(agentId, now, 0.25), 'certificate confirmations from this terminal');
        const { fingerprint } = agentBody(certConfirmRequestCheck, req.json());
        const outcome = ctx.db.transaction((): 'renewed' | 'already' | 'unknown' => {
          const cur = ctx.db.prepare('SELECT cert_fingerprint AS fp FROM agents WHERE id = ?').get(agentId) as { fp: string } | undefined;
          if (cur?.fp === fingerprint) return 'already'; // the answer to an earlier confirm was lost
          const next = ctx.db.prepare('SELECT not_after FROM cert_renewals WHERE agent_id = ? AND fingerprint = ?').get(agentId, fingerprint) as { not_after: string } | undefined;
          if (!cur || !next) return 'unknown';
          ctx.recordEvent({ type: 'agent.cert_renewed', terminalId: agentId, data: { agentId, oldFingerprint: cur.fp, newFingerprint: fingerprint, notAfter: next.not_after } });
          ctx.db.prepare('UPDATE agents SET cert_fingerprint = ? WHERE id = ?').run(fingerprint, agentId);
          ctx.db.prepare('DELETE FROM cert_renewals WHERE agent_id = ?').run(agentId);
          return 'renewed';
        })();
        if (outcome === 'unknown') throw new HttpError(409, 'unknown_certificate', 'no renewed certificate with this fingerprint is waiting for this terminal');
        return { status: 200, json: { ok: true, fingerprint } };
      },
    },
  ];
}

/** The console's own server certificate: renewed once it is due, at most one renewal at a time. */
const serverState = new WeakMap<ConsoleContext, { pem: string; due: number; busy: boolean; lastError: string }>();

const caWarned = new WeakSet<ConsoleContext>();

function renewServerIfDue(c: ConsoleContext, now: Date, log: (m: string) => void = (m) => process.stderr.write(m + '\n')): void {
  const ctx = c as OpenConsole;
  if (!caWarned.has(ctx)) {
    // The CA is not renewed automatically (agents pin it): said once per serve while it is in its window.
    caWarned.add(ctx);
    const ca = certificateStatus(ctx, now.getTime())[0]!;
    if (ca.advice) log(`${t('警告', 'WARNING')}: ${t(ca.advice.ja, ca.advice.en)} (${ca.notAfter})`);
  }
  let st = serverState.get(ctx);
  if (!st || st.pem !== ctx.server.certPem) {
    const d = certificateDates(ctx.server.certPem);
    // An unreadable validity is renewed at once rather than trusted.
    const due = renewalState(d.notBefore, d.notAfter, now.getTime()) === 'valid' ? renewalFrom(d.notBefore, d.notAfter) : now.getTime();
    st = { pem: ctx.server.certPem, due, busy: false, lastError: '' };
    serverState.set(ctx, st);
  }
  if (st.busy || now.getTime() < st.due) return;
  st.busy = true;
  const s = st;
  void (async () => {
    const old = certificateDates(ctx.server.certPem);
    const hosts = serverCertHosts(ctx.server.certPem);
    const pair = await issueServerCert(ctx.ca, hosts.length ? hosts : ['localhost']);
    const fresh = certificateDates(pair.certPem);
    installServerPair(ctx.paths, pair);
    ctx.recordEvent({
      type: 'console.server_cert_renewed',
      data: { oldFingerprint: old.fingerprint, newFingerprint: fresh.fingerprint, notAfter: new Date(fresh.notAfter).toISOString(), hosts },
    });
    ctx.server.certPem = pair.certPem;
    ctx.server.keyPem = pair.keyPem;
    serveCertificate(ctx, pair);
  })()
    .catch((e: Error) => {
      // Tried again on a later tick; logged once per distinct error.
      if (e.message !== s.lastError) log(`server certificate renewal failed: ${e.message}`);
      s.lastError = e.message;
      s.due = Date.now() + 60_000;
    })
    .finally(() => {
      s.busy = false;
    });
}

export interface CertificateStatus {
  which: 'ca' | 'server';
  subject: string;
  notAfter: string;
  renewFrom: string;
  state: ReturnType<typeof renewalState>;
  /** What to do, Japanese first; empty while nothing is needed. */
  advice: { ja: string; en: string } | null;
}

/** The console's CA and server certificate against their renewal windows (status command, serve's start). */
export function certificateStatus(ctx: Pick<OpenConsole, 'ca' | 'server'>, now: number): CertificateStatus[] {
  return (['ca', 'server'] as const).map((which) => {
    const d = certificateDates(which === 'ca' ? ctx.ca.certPem : ctx.server.certPem);
    const state = renewalState(d.notBefore, d.notAfter, now);
    let advice: CertificateStatus['advice'] = null;
    if (which === 'ca' && state !== 'valid')
      advice = {
        ja: 'CA 証明書の期限が近づいています。新しい CA で管理コンソールを初期化し、全端末を再登録してください (README「証明書の更新」)',
        en: 'the CA certificate is near its end: set up a console with a new CA and re-enrol every terminal (README, certificate renewal)',
      };
    if (which === 'server' && state !== 'valid')
      advice = {
        ja: 'サーバー証明書は serve の実行中に自動更新されます。serve が動いていなければ起動してください',
        en: 'the server certificate is renewed automatically while serve runs: start serve if it is not running',
      };
    return { which, subject: d.subject, notAfter: new Date(d.notAfter).toISOString(), renewFrom: new Date(renewalFrom(d.notBefore, d.notAfter)).toISOString(), state, advice };
  });
}

const statusCommand: CliCommand = {
  summary: 'status --data DIR [--json]   証明書の期限と更新時期 / certificate expiry and renewal (warns within the renewal window)',
  run(args, open) {
    const { values } = parseArgs({ args, options: { data: { type: 'string', default: process.env.SEKIMORI_CONSOLE_DATA ?? '/var/lib/sekimori-console' }, json: { type: 'boolean', default: false } } });
    return withConsole(open, (c) => {
      const list = certificateStatus(c as OpenConsole, Date.now());
      const pending = (c.db.prepare('SELECT count(*) AS n FROM cert_renewals').get() as { n: number }).n;
      if (values.json) process.stdout.write(JSON.stringify({ certificates: list, agentRenewalsAwaitingConfirm: pending }, null, 2) + '\n');
      else {
        for (const x of list) {
          const name = x.which === 'ca' ? t('CA 証明書', 'CA certificate') : t('サーバー証明書', 'server certificate');
          const mark = x.state === 'valid' ? 'OK ' : t('警告', 'WARN');
          process.stdout.write(`${mark} ${name}: ${t('有効期限', 'valid until')} ${x.notAfter}  ${t('更新開始', 'renewal from')} ${x.renewFrom}\n`);
          if (x.advice) process.stdout.write(`     ${t(x.advice.ja, x.advice.en)}\n`);
        }
        process.stdout.write(`${t('確認待ちの端末証明書の更新', 'agent renewals awaiting confirmation')}: ${pending}\n`);
      }
      // Exit 1 while anything needs attention, so a monitoring check can run this.
      return list.some((x) => x.state !== 'valid') ? 1 : 0;
    });
  },
};

export const renewalModule: ConsoleModule = {
  name: 'renewal',
  migrations: [
    `CREATE TABLE cert_renewals (
       agent_id TEXT PRIMARY KEY,
       fingerprint TEXT NOT NULL,
       not_after TEXT NOT NULL,
       issued_at TEXT NOT NULL
     )`,
  ],
  routes: renewRoutes,
  commands: { status: statusCommand },
  tick: (ctx, now) => renewServerIfDue(ctx, now),
};
