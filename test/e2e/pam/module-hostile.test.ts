/**
 * pam_sekimori.so against a fake agent: the module must accept only a well-formed accept answer,
 * survive long and hostile answers, time out on a silent agent, escape what the user typed, refuse
 * a socket that is not root's, and honour break-glass only with a root-owned, non-writable marker.
 * Real Linux-PAM through pamtester; the fake agent is a Unix socket in a temp folder.
 * Everything runs twice: with the built module, and with the same source built under ASan and
 * UBSan (pamtester gets the ASan runtime preloaded; any finding aborts it, which fails the case).
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../integration/harness.js';
import { isRoot, requireTools } from '../tools.js';

const MODULE = join(ROOT, 'dist/pam/pam_sekimori.so');
const check = requireTools('PAM module vs hostile agent (pamtester + built pam_sekimori.so)', ['pamtester', MODULE], 'apt-get install pamtester gcc libpam0g-dev && npm run build', {
  missing: isRoot() ? [] : ['root (the test writes /etc/pam.d/sekimori-test-*)'],
});

type Behaviour = (sock: Socket, request: string) => void;

/** The ASan runtime gcc links against (its versioned name differs between gcc releases). */
function asanRuntime(): string {
  try {
    const p = execFileSync('gcc', ['-print-file-name=libasan.so'], { encoding: 'utf8', timeout: 10_000 }).trim();
    return p.startsWith('/') && existsSync(p) ? p : '';
  } catch {
    return '';
  }
}
const LIBASAN = check.ok ? asanRuntime() : '';
const sanCheck = check.ok
  ? requireTools('PAM module under ASan/UBSan (gcc + libasan + libubsan)', ['gcc', ...(LIBASAN ? [] : ['libasan.so (gcc -print-file-name)'])], 'apt-get install gcc libasan8 libubsan1')
  : { ok: false };

/** The module's source built with -fsanitize=address,undefined into a temp folder. */
function buildSanitized(source = join(ROOT, 'installers/linux/pam/pam_sekimori.c')): string {
  const out = mkdtempSync(join(tmpdir(), 'sekimori-pam-asan-'));
  const so = join(out, 'pam_sekimori.so');
  execFileSync(
    'gcc',
    ['-O1', '-g', '-fno-omit-frame-pointer', '-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-Wall', '-Wextra', '-Werror', '-fPIC', '-fvisibility=hidden', '-shared', '-o', so, source, '-lpam'],
    { stdio: 'pipe', timeout: 120_000 },
  );
  chmodSync(out, 0o755);
  return so;
}

/** A module with a deliberate heap overflow: the positive control that the sanitizer run is live. */
const PROBE_SOURCE = `#include <security/pam_modules.h>
#include <stdlib.h>
#include <string.h>
__attribute__((visibility("default"))) int pam_sm_authenticate(pam_handle_t *h, int f, int c, const char **v) {
  (void)h; (void)f; (void)c; (void)v;
  volatile size_t n = 8;
  char *p = malloc(n);
  memset(p, 'x', n + 1);
  int r = p[0] == 'x' ? PAM_SUCCESS : PAM_AUTH_ERR;
  free(p);
  return r;
}
__attribute__((visibility("default"))) int pam_sm_setcred(pam_handle_t *h, int f, int c, const char **v) { (void)h; (void)f; (void)c; (void)v; return PAM_SUCCESS; }
`;

const isSanitized = (env: NodeJS.ProcessEnv) => Boolean(env.LD_PRELOAD && env.ASAN_OPTIONS);

const variants: { name: string; ok: boolean; module: () => string; env: NodeJS.ProcessEnv }[] = [
  { name: 'built module', ok: check.ok, module: () => MODULE, env: process.env },
  {
    name: 'ASan+UBSan build',
    ok: sanCheck.ok,
    module: buildSanitized,
    env: { ...process.env, LD_PRELOAD: LIBASAN, ASAN_OPTIONS: 'abort_on_error=1:detect_leaks=1', UBSAN_OPTIONS: 'halt_on_error=1:abort_on_error=1:print_stacktrace=1' },
  },
];

describe.each(variants)('pam_sekimori.so against a hostile or broken agent ($name)', ({ ok, module, env }) => {
  if (!ok) {
    it.skip('tools missing (see above)', () => {});
    return;
  }
  let MODULE_UNDER_TEST = '';
  let dir: string;
  let server: Server;
  let behaviour: Behaviour = () => {};
  let lastRequest = '';
  const service = `sekimori-test-${randomBytes(6).toString('hex')}`;
  const serviceFile = `/etc/pam.d/${service}`;
  const sockPath = () => join(dir, 'agent.sock');

  // Asynchronous: the fake agent lives in this process, so its event loop must keep running.
  function pam(code: string, user = 'tanaka'): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const p = spawn('pamtester', [service, user, 'authenticate'], { stdio: ['pipe', 'ignore', 'ignore'], env });
      const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
      p.on('error', reject);
      p.on('exit', (status, signal) => {
        clearTimeout(timer);
        // A crash of the module would kill pamtester with a signal.
        if (signal !== null) reject(new Error(`pamtester died of ${signal}`));
        else resolve(status === 0);
      });
      // pamtester may refuse before reading the code (e.g. a refused user name): not an error here.
      p.stdin.on('error', () => {});
      p.stdin.end(code + '\n');
    });
  }

  const http = (status: string, body: string, extra = '') => (s: Socket) => {
    s.end(`HTTP/1.1 ${status}\r\nContent-Type: application/json\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  };

  beforeAll(async () => {
    MODULE_UNDER_TEST = module();
    dir = mkdtempSync(join(tmpdir(), 'sekimori-pam-fake-'));
    server = createServer((s) => {
      let buf = '';
      s.on('data', (d) => {
        buf += d.toString('latin1');
        const end = buf.indexOf('\r\n\r\n');
        const len = /content-length: (\d+)/i.exec(buf)?.[1];
        if (end >= 0 && len !== undefined && buf.length >= end + 4 + Number(len)) {
          lastRequest = buf;
          behaviour(s, buf);
        }
      });
      s.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(sockPath(), r));
    chmodSync(sockPath(), 0o600);
    writeFileSync(serviceFile, `auth required pam_permit.so\nauth required ${MODULE_UNDER_TEST} socket=${sockPath()} timeout=1\naccount required pam_permit.so\n`);
  });
  afterAll(async () => {
    rmSync(serviceFile, { force: true });
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    rmSync(dir, { recursive: true, force: true });
    if (MODULE_UNDER_TEST && MODULE_UNDER_TEST !== MODULE) rmSync(dirname(MODULE_UNDER_TEST), { recursive: true, force: true });
  });

  // The positive control belongs to the sanitizer variant only (registered there, not skipped elsewhere).
  if (isSanitized(env)) it('the sanitizer run is live: a probe module that overflows the heap kills pamtester', async () => {
    const src = join(dir, 'probe.c');
    writeFileSync(src, PROBE_SOURCE);
    const probe = buildSanitized(src);
    const probeService = `${service}-probe`;
    writeFileSync(`/etc/pam.d/${probeService}`, `auth required ${probe}\n`);
    try {
      const died = await new Promise<string | null>((resolve, reject) => {
        const p = spawn('pamtester', [probeService, 'tanaka', 'authenticate'], { stdio: ['pipe', 'ignore', 'ignore'], env });
        const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
        p.on('error', reject);
        p.on('exit', (_status, signal) => {
          clearTimeout(timer);
          resolve(signal);
        });
        p.stdin.on('error', () => {});
        p.stdin.end('x\n');
      });
      expect(died).toBe('SIGABRT');
    } finally {
      rmSync(`/etc/pam.d/${probeService}`, { force: true });
      rmSync(dirname(probe), { recursive: true, force: true });
    }
  });

  it('accepts only 200 + {"result":"accept" (positive control), also chunked', async () => {
    behaviour = http('200 OK', '{"result":"accept","reason":"ok"}');
    expect(await pam('123456')).toBe(true);
    behaviour = (s) => s.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n21\r\n{"result":"accept","reason":"ok"}\r\n0\r\n\r\n');
    expect(await pam('123456')).toBe(true);
  });

  it.each<[string, Behaviour]>([
    ['200 reject', http('200 OK', '{"result":"reject","reason":"wrong_code"}')],
    ['500 with an accept body', http('500 Internal Server Error', '{"result":"accept"}')],
    ['"accepted"', http('200 OK', '{"result":"accepted"}')],
    ['accept further in the body', http('200 OK', '{"reason":"x","result":"accept"}')],
    ['HTTP/1.1 2000', (s) => s.end('HTTP/1.1 2000 OK\r\n\r\n{"result":"accept"}')],
    ['no header end', (s) => s.end('HTTP/1.1 200 OK\r\n{"result":"accept"}')],
    ['NUL before the body', (s) => s.end('HTTP/1.1 200 OK\r\nX: \u0000\r\n\r\n{"result":"accept"}')],
    ['1 MiB of garbage', (s) => s.end(Buffer.alloc(1 << 20, 0x41))],
    ['4 KiB header then accept', (s) => s.end(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(4096)}\r\n\r\n{"result":"accept"}`)],
    ['binary noise', (s) => s.end(randomBytes(9000))],
    ['closes at once', (s) => s.destroy()],
    ['never answers (timeout=1)', () => {}],
    ['dribbles forever', (s) => { const t = setInterval(() => (s.writable ? s.write('H') : clearInterval(t)), 50); s.on('close', () => clearInterval(t)); }],
  ])('refuses: %s', async (_name, b) => {
    behaviour = b;
    expect(await pam('123456')).toBe(false);
  });

  it('sends what was typed as an escaped JSON string, and never more than 64 bytes of it', async () => {
    behaviour = http('200 OK', '{"result":"reject"}');
    const hostile = '1"},"result":"accept","x":"\\';
    await pam(hostile);
    const body = JSON.parse(lastRequest.slice(lastRequest.indexOf('\r\n\r\n') + 4)) as Record<string, string>;
    expect(body).toMatchObject({ user: 'tanaka', code: hostile, service });
    expect(lastRequest.startsWith('POST /mfa/verify HTTP/1.1\r\n')).toBe(true);
    await pam('9'.repeat(65));
    expect((JSON.parse(lastRequest.slice(lastRequest.indexOf('\r\n\r\n') + 4)) as { code: string }).code).toBe('!overlong');
    await pam('12\u00e93\t4');
    expect((JSON.parse(lastRequest.slice(lastRequest.indexOf('\r\n\r\n') + 4)) as { code: string }).code).toBe('12??3?4');
  });

  it('refuses user names outside [A-Za-z0-9._@-] without asking the agent', async () => {
    behaviour = http('200 OK', '{"result":"accept"}');
    lastRequest = '';
    expect(await pam('123456', 'bad"user')).toBe(false);
    expect(await pam('123456', 'x'.repeat(65))).toBe(false);
    expect(lastRequest).toBe('');
  });

  it('refuses a socket that is not owned by root, even if it says accept', async () => {
    behaviour = http('200 OK', '{"result":"accept"}');
    chownSync(sockPath(), 65534, 65534);
    try {
      expect(await pam('123456')).toBe(false);
    } finally {
      chownSync(sockPath(), 0, 0);
    }
    expect(await pam('123456')).toBe(true);
  });

  it('fails closed without an agent; break-glass only with a root-owned marker that others cannot write', async () => {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(sockPath(), { force: true });
    const marker = join(dir, 'mfa-break-glass');
    expect(await pam('123456')).toBe(false);
    writeFileSync(marker, 'test\n', { mode: 0o666 });
    chmodSync(marker, 0o666);
    expect(await pam('123456')).toBe(false);
    chmodSync(marker, 0o644);
    expect(await pam('123456')).toBe(true);
    rmSync(marker);
    symlinkSync('/etc/hostname', marker);
    expect(await pam('123456')).toBe(false);
    rmSync(marker);
  });
});
