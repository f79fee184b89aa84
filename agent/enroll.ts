/** `sekimori-agent enroll`: pin the console CA by fingerprint, make a key, get a client certificate. */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { request } from 'node:https';
import { parseArgs } from 'node:util';
import type { EnrollResponse } from '../protocol/api.js';
import { t } from '../protocol/i18n.js';
import { createKeyAndCsr, fingerprintOfPem, normaliseFingerprint } from '../protocol/pki.js';
import { isObject } from '../protocol/validate.js';
import { SEKIMORI_VERSION } from '../protocol/version.js';
import { httpsJson } from './link.js';
import { DEFAULT_STATE_DIR, agentPaths, writeFileDurably, type Identity } from './state.js';
import { osDescription } from './os.js';

/**
 * Fetches the console's CA certificate without trusting the connection, then trusts it only if
 * its SHA-256 fingerprint is the one the administrator gave us out of band.
 */
function fetchPinnedCa(consoleUrl: string, fingerprint: string): Promise<string> {
  const url = new URL('/api/agent/ca', consoleUrl);
  return new Promise((resolve, reject) => {
    const req = request(url, { rejectUnauthorized: false, minVersion: 'TLSv1.3', timeout: 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
          if (!isObject(body) || typeof body.caPem !== 'string') throw new Error('no CA certificate in the reply');
          if (fingerprintOfPem(body.caPem) !== normaliseFingerprint(fingerprint)) {
            throw new Error(t('コンソールのCAフィンガープリントが一致しません(中間者攻撃の可能性)', 'console CA fingerprint does not match (possible man-in-the-middle)'));
          }
          resolve(body.caPem);
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

export async function enrollCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      console: { type: 'string' },
      token: { type: 'string' },
      'ca-fingerprint': { type: 'string' },
      state: { type: 'string', default: DEFAULT_STATE_DIR },
      monitor: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  if (!values.console || !values.token || !values['ca-fingerprint']) {
    process.stderr.write('usage: sekimori-agent enroll --console URL --token T --ca-fingerprint FP [--state DIR] [--monitor]\n');
    return 2;
  }
  const paths = agentPaths(values.state);
  if (existsSync(paths.identity)) {
    process.stderr.write(t(`既に登録済みです: ${paths.identity}\n`, `already enrolled: ${paths.identity}\n`));
    return 1;
  }
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  try {
    const caPem = await fetchPinnedCa(values.console, values['ca-fingerprint']);
    // Identity is random, made here: never derived from hardware ids, which cloned images share.
    const agentId = randomUUID();
    const { keyPem, csrPem } = await createKeyAndCsr(agentId);
    const reply = await httpsJson(undefined, { consoleUrl: values.console, caPem }, 'POST', '/api/agent/enroll', {
      token: values.token,
      agentId,
      csrPem,
      hostname: hostname(),
      os: osDescription(),
      agentVersion: SEKIMORI_VERSION,
    }, 30_000);
    if (reply.status !== 200) {
      const msg = isObject(reply.body) && typeof reply.body.message === 'string' ? reply.body.message : `HTTP ${reply.status}`;
      process.stderr.write(t(`登録が拒否されました: ${msg}\n`, `enrollment refused: ${msg}\n`));
      return 1;
    }
    const r = reply.body as EnrollResponse;
    writeFileDurably(paths.key, keyPem, 0o600);
    writeFileDurably(paths.cert, r.certPem, 0o644);
    writeFileDurably(paths.ca, r.caPem, 0o644);
    writeFileDurably(paths.policyKey, r.policyPublicKeyPem, 0o644);
    const identity: Identity = {
      agentId,
      consoleUrl: values.console,
      caFingerprint: normaliseFingerprint(values['ca-fingerprint']),
      enrolledAt: new Date().toISOString(),
      monitorOnly: values.monitor,
    };
    writeFileDurably(paths.identity, JSON.stringify(identity, null, 2), 0o600);
    if (values.json) process.stdout.write(JSON.stringify({ agentId, state: paths.dir }) + '\n');
    else process.stdout.write(t(`登録しました: 端末ID ${agentId}\n`, `enrolled: agent id ${agentId}\n`));
    return 0;
  } catch (e) {
    process.stderr.write(t(`登録に失敗しました: ${(e as Error).message}\n`, `enrollment failed: ${(e as Error).message}\n`));
    return 1;
  }
}
