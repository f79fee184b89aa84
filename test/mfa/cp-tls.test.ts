/**
 * Issue 13: the privacyIDEA Credential Provider talks WinHTTP, which fails whenever a server asks
 * for a client certificate (12044, ERROR_WINHTTP_CLIENT_AUTH_CERT_NEEDED) and which on Windows 10
 * has no TLS 1.3. The console's validate port must therefore complete a TLS 1.2 handshake without
 * requesting a certificate, with AEAD suites only; the agents' port must stay TLS 1.3 + requested
 * client certificate. Real console process, real TLS, loopback only.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateListen } from '../../console/serve.js';
import { requireTools } from '../e2e/tools.js';
import { startConsole, waitFor, type TestConsole } from '../integration/harness.js';

let c: TestConsole;
let ca: Buffer;
let validatePort: number;

beforeAll(async () => {
  c = await startConsole();
  ca = readFileSync(join(c.dataDir, 'ca.pem'));
  // serve prints it with the main URL; waited for anyway, bounded.
  const m = await waitFor('validate URL printed', () => /https:\/\/127\.0\.0\.1:(\d+)\/validate\/check/.exec(c.output()), 20_000);
  validatePort = Number(m[1]);
}, 60_000);
afterAll(async () => {
  await c?.cleanup();
});

interface Handshake {
  ok: boolean;
  protocol?: string | null;
  cipher?: string;
  error?: string;
}

/**
 * One handshake without a client certificate, bounded in time. (node:tls cannot tell whether the
 * server sent a CertificateRequest; `openssl s_client` below can.)
 */
function handshake(port: number, opts: ConnectionOptions): Promise<Handshake> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (h: Handshake, s?: TLSSocket) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s?.destroy();
      resolve(h);
    };
    const s = connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...opts });
    const timer = setTimeout(() => done({ ok: false, error: 'timeout' }, s), 10_000);
    s.once('secureConnect', () => done({ ok: true, protocol: s.getProtocol(), cipher: s.getCipher().name }, s));
    s.once('error', (e) => done({ ok: false, error: e.message }, s));
  });
}

/** What `openssl s_client` says about a handshake: protocol, cipher and whether the server requested a certificate. */
function opensslHandshake(port: number, args: string[]): { ok: boolean; text: string; requested: boolean } {
  const r = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', join(c.dataDir, 'ca.pem'), ...args], {
    input: 'Q\n',
    encoding: 'utf8',
    timeout: 15_000,
  });
  const text = `${r.stdout}\n${r.stderr}`;
  return {
    ok: /Verify return code: 0 \(ok\)/.test(text) && !/Cipher is \(NONE\)/.test(text),
    text,
    // s_client prints "Acceptable client certificate CA names" or "Requested Signature Algorithms" only when asked.
    requested: /Acceptable client certificate CA names|Client Certificate Types/.test(text),
  };
}

// An independent TLS client; missing, these cases skip loudly (and fail under CI).
const hasOpenssl = requireTools('validate port, openssl s_client', ['openssl'], 'apt-get install openssl (bash scripts/setup.sh --test)').ok;

describe('validate port (privacyIDEA Credential Provider)', () => {
  it('completes TLS 1.2 without a client certificate, with an ECDHE AEAD suite', async () => {
    const h = await handshake(validatePort, { maxVersion: 'TLSv1.2', minVersion: 'TLSv1.2' });
    expect(h).toMatchObject({ ok: true, protocol: 'TLSv1.2' });
    expect(h.cipher).toMatch(/^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/);
  });

  it('completes TLS 1.3 too', async () => {
    const h = await handshake(validatePort, { minVersion: 'TLSv1.3' });
    expect(h).toMatchObject({ ok: true, protocol: 'TLSv1.3' });
  });

  it('refuses CBC-only TLS 1.2 clients and TLS 1.1', async () => {
    const cbc = await handshake(validatePort, { maxVersion: 'TLSv1.2', minVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:AES128-SHA' });
    expect(cbc.ok).toBe(false);
    const old = await handshake(validatePort, { maxVersion: 'TLSv1.1', minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' });
    expect(old.ok).toBe(false);
  });

  it.skipIf(!hasOpenssl)('openssl s_client -tls1_2: handshake verified, no certificate request', () => {
    const r = opensslHandshake(validatePort, ['-tls1_2']);
    expect(r.ok, r.text).toBe(true);
    expect(r.text).toMatch(/Protocol\s*:\s*TLSv1\.2/);
    expect(r.requested, r.text).toBe(false);
  });

  it('serves only /validate/*: the web console and agent API are not there (a privacyIDEA error the CP can parse)', async () => {
    for (const path of ['/', '/login', '/api/agent/ca', '/api/agent/policy', '/pi/validate/check']) {
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: validatePort, path, ca, servername: 'localhost', timeout: 10_000 }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
        req.end();
      });
      expect(status, path).toBe(404);
      const j = JSON.parse(body) as { result: { status: boolean; error: { code: unknown } } };
      expect(j.result.status).toBe(false);
      expect(j.result.error.code).toBe(601);
    }
  });
});

describe('validate port keeps the main port\'s hardening', () => {
  it('refuses a Host that is not a name of the certificate (421), as the main port does', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: validatePort, path: '/validate/check', method: 'POST', ca, servername: 'localhost', headers: { host: 'evil.example', 'content-type': 'application/x-www-form-urlencoded' }, timeout: 10_000 },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end('pass=&user=x');
    });
    expect(status).toBe(421);
  });

  it('a silent connection is closed (first-request timeout applies here too)', async () => {
    const s = connect({ host: '127.0.0.1', port: validatePort, ca, servername: 'localhost' });
    const closed = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 20_000);
      s.once('close', () => {
        clearTimeout(t);
        resolve(true);
      });
      s.once('error', () => {});
    });
    expect(closed).toBe(true);
  }, 30_000);
});

describe('--validate-listen', () => {
  it.each([
    ['127.0.0.1:8443', undefined, { host: '127.0.0.1', port: 8444, explicit: false }],
    ['0.0.0.0:0', undefined, { host: '0.0.0.0', port: 0, explicit: false }],
    ['[::1]:8443', undefined, { host: '::1', port: 8444, explicit: false }],
    ['127.0.0.1:8443', '10.0.0.5:9443', { host: '10.0.0.5', port: 9443, explicit: true }],
    ['127.0.0.1:8443', 'off', null],
  ] as const)('%s with %s', (listen, flag, want) => expect(validateListen(listen, flag)).toEqual(want));
  it('refuses malformed values', () => {
    expect(() => validateListen('127.0.0.1:8443', 'nonsense')).toThrow(/HOST:PORT/);
    expect(() => validateListen('127.0.0.1:8443', '1.2.3.4:70000')).toThrow(/HOST:PORT/);
  });
});

describe('agent port stays strict', () => {
  it('refuses TLS 1.2', async () => {
    const h = await handshake(c.port, { maxVersion: 'TLSv1.2' });
    expect(h.ok).toBe(false);
  });

  it.skipIf(!hasOpenssl)('openssl s_client: -tls1_2 refused; TLS 1.3 requests a client certificate', () => {
    expect(opensslHandshake(c.port, ['-tls1_2']).ok).toBe(false);
    const r = opensslHandshake(c.port, ['-tls1_3']);
    expect(r.ok, r.text).toBe(true);
    expect(r.requested, r.text).toBe(true);
  });
});
