/** Creating (`init`) and opening a console data folder, and the ConsoleContext modules work with. */
import { generateKeyPairSync, type KeyObject, createPrivateKey } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type Database from 'better-sqlite3';
import { generateSecret, generateURI } from 'otplib';
import { defaultPolicyBody, policyBodyErrors, signPolicy, type PolicyBody, type SignedPolicy } from '../../protocol/policy.js';
import { modules } from '../modules.js';
import { migrate, openDatabase } from './db.js';
import { recordConsoleEvent } from './events.js';
import { EventFolder } from './folding.js';
import { generatePassword, hashPassword } from './passwords.js';
import { consolePaths, type ConsoleConfig } from './paths.js';
import { completeServerRenewal, createCa, fingerprintOfPem, issueServerCert } from './pki.js';
import { PolicyValidationError, type OpenConsole } from './open-console.js';
import { coreMigrations } from './schema.js';
import { loadOrCreateKey, open, seal } from './secrets.js';
import { insertAccount } from '../web/store.js';

// Kept importable from here: tests and benches open a console through this file.
export { PolicyValidationError, type OpenConsole };

function writeSecretFile(path: string, content: string | Buffer): void {
  writeFileSync(path, content, { mode: 0o600 });
  chmodSync(path, 0o600);
}

export interface InitResult {
  caFingerprint: string;
  adminCredentialsFile: string;
  adminUser: string;
}

/** `sekimori-console init`: CA, server certificate, policy signing key, secret key, first admin, policy v1. */
export async function initConsole(dataDir: string, opts: { sans: string[]; organisation: string }): Promise<InitResult> {
  const paths = consolePaths(dataDir);
  if (existsSync(paths.caCert)) throw new Error(`${dataDir} は初期化済みです / is already initialised`);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);
  const config: ConsoleConfig = { organisation: opts.organisation, sans: opts.sans };
  writeFileSync(paths.config, JSON.stringify(config, null, 2) + '\n');

  const ca = await createCa(opts.organisation);
  writeSecretFile(paths.caKey, ca.keyPem);
  writeFileSync(paths.caCert, ca.certPem);
  const server = await issueServerCert(ca, ['localhost', '127.0.0.1', '::1', hostname(), ...opts.sans]);
  writeSecretFile(paths.serverKey, server.keyPem);
  writeFileSync(paths.serverCert, server.certPem);
  const policyKeys = generateKeyPairSync('ed25519');
  writeSecretFile(paths.policyKey, policyKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(paths.policyPublicKey, policyKeys.publicKey.export({ type: 'spki', format: 'pem' }));
  loadOrCreateKey(paths.secretKey);

  const ctx = openConsole(dataDir);
  try {
    ctx.publishPolicy(defaultPolicyBody(), 'init');
    const password = generatePassword();
    const totpSecret = generateSecret();
    insertAccount(ctx.db, { username: 'admin', role: 'admin', passwordHash: await hashPassword(password), sealedTotpSecret: ctx.seal(totpSecret), createdAt: new Date().toISOString() });
    const uri = generateURI({ issuer: `Sekimori ${opts.organisation}`, label: 'admin', secret: totpSecret });
    writeSecretFile(
      paths.initialAdmin,
      [
        '# Sekimori 管理コンソール 初期管理者 / initial administrator',
        '# ログイン後すぐにパスワードを変更し、このファイルを削除してください。',
        '# Change the password after first login and delete this file.',
        'username: admin',
        `password: ${password}`,
        `totp-secret: ${totpSecret}`,
        `totp-uri: ${uri}`,
        '',
      ].join('\n'),
    );
    ctx.recordEvent({ type: 'admin.console_initialised', user: 'init', data: { organisation: opts.organisation, sans: opts.sans } });
    return { caFingerprint: ctx.caFingerprint, adminCredentialsFile: paths.initialAdmin, adminUser: 'admin' };
  } finally {
    ctx.close();
  }
}

export function openConsole(dataDir: string): OpenConsole {
  const paths = consolePaths(dataDir);
  if (!existsSync(paths.caCert)) {
    throw new Error(`${dataDir}: 初期化されていません。先に sekimori-console init を実行してください / not initialised: run sekimori-console init first`);
  }
  const config = JSON.parse(readFileSync(paths.config, 'utf8')) as ConsoleConfig;
  const ca = { certPem: readFileSync(paths.caCert, 'utf8'), keyPem: readFileSync(paths.caKey, 'utf8') };
  completeServerRenewal(paths); // a server certificate renewal a crash interrupted (core/renewal.ts)
  const server = { certPem: readFileSync(paths.serverCert, 'utf8'), keyPem: readFileSync(paths.serverKey, 'utf8') };
  const policyKey: KeyObject = createPrivateKey(readFileSync(paths.policyKey, 'utf8'));
  const secretKey = loadOrCreateKey(paths.secretKey);
  const db: Database.Database = openDatabase(paths.db);
  migrate(db, 'core', coreMigrations);
  for (const m of modules) migrate(db, m.name, m.migrations);

  const folder = new EventFolder((e) => recordConsoleEvent(db, e));
  const ctx: OpenConsole = {
    dataDir,
    paths,
    config,
    ca,
    caFingerprint: fingerprintOfPem(ca.certPem),
    server,
    policyPublicKeyPem: readFileSync(paths.policyPublicKey, 'utf8'),
    hasModule: (name) => modules.some((m) => m.name === name),
    db,
    recordEvent: (e) => recordConsoleEvent(db, e),
    recordRepeated: (e, key) => folder.record(e, key),
    flushRepeated: (now, force) => folder.flush(now, force),
    currentPolicy(): SignedPolicy {
      const row = db.prepare('SELECT document, signature FROM policies ORDER BY version DESC LIMIT 1').get() as
        | { document: string; signature: string }
        | undefined;
      if (!row) throw new Error('no policy published yet');
      return { policy: JSON.parse(row.document), signature: row.signature };
    },
    publishPolicy(body: unknown, actor: string): SignedPolicy {
      const errors = policyBodyErrors(body);
      if (errors.length) throw new PolicyValidationError(errors);
      const b = body as PolicyBody;
      return db.transaction((): SignedPolicy => {
        const prev = db.prepare('SELECT max(version) AS v FROM policies').get() as { v: number | null };
        const version = (prev.v ?? 0) + 1;
        const signed = signPolicy(
          { version, issuedAt: new Date().toISOString(), issuedBy: actor, agent: b.agent, usb: b.usb, mfa: b.mfa, software: b.software },
          policyKey,
        );
        db.prepare('INSERT INTO policies (version, document, signature, created_at, created_by) VALUES (?, ?, ?, ?, ?)').run(
          version,
          JSON.stringify(signed.policy),
          signed.signature,
          signed.policy.issuedAt,
          actor,
        );
        recordConsoleEvent(db, { type: 'admin.policy_published', user: actor, data: { version, previousVersion: prev.v ?? 0 } });
        return signed;
      })();
    },
    seal: (p) => seal(secretKey, p),
    open: (s) => open(secretKey, s),
    organisation: () => config.organisation,
    close() {
      if (db.open) folder.flush(Date.now(), true); // counts of the last minute are not lost on shutdown
      db.close();
    },
  };
  return ctx;
}
