/**
 * The terminal package: built from the single executable and the PAM module, with every
 * installer piece at the path the system reads it from, and sane modes. It is not installed on
 * this machine (its postinst would enable a root service here); the pieces themselves are tested
 * in their tiers (QEMU: modprobe/udev behaviour, PAM: the module, SEA: the executable).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../integration/harness.js';
import { requireTools } from '../tools.js';

const tools = requireTools('installer (.deb)', ['dpkg-deb', 'gcc'], 'apt-get install dpkg-dev gcc libpam0g-dev', {
  missing: existsSync(join(ROOT, 'dist/pam/pam_sekimori.so')) ? [] : ['dist/pam/pam_sekimori.so (npm run build with libpam0g-dev)'],
});

describe.skipIf(!tools.ok)('sekimori-agent .deb', () => {
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const deb = join(ROOT, `dist/sekimori-agent_${version}_amd64.deb`);
  const x = tools.ok ? mkdtempSync(join(tmpdir(), 'sekimori-deb-')) : '';

  beforeAll(() => {
    if (!existsSync(join(ROOT, 'dist/sea/sekimori-agent'))) execFileSync('bash', [join(ROOT, 'scripts/package.sh')], { stdio: 'pipe', timeout: 300_000 });
    execFileSync('bash', [join(ROOT, 'installers/linux/build-deb.sh')], { stdio: 'pipe', timeout: 300_000 });
    execFileSync('dpkg-deb', ['-x', deb, x]);
  }, 360_000);
  afterAll(() => rmSync(x, { recursive: true, force: true }));

  it('has a valid control file', () => {
    const field = (f: string) => execFileSync('dpkg-deb', ['-f', deb, f], { encoding: 'utf8' }).trim();
    expect(field('Package')).toBe('sekimori-agent');
    expect(field('Version')).toBe(version);
    expect(field('Architecture')).toBe('amd64');
  });

  it('puts every piece where the system reads it, owned by root, with sane modes', () => {
    const list = execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8' });
    const entry = (path: string) => list.split('\n').find((l) => l.endsWith(` ./${path}`) || l.includes(` ./${path} ->`));
    const expectations: [string, RegExp][] = [
      ['', /^drwxr-xr-x root\/root/],
      ['opt/sekimori/bin/sekimori-agent', /^-rwxr-xr-x root\/root/],
      ['usr/bin/sekimori-agent', /^lrwxrwxrwx root\/root/],
      ['lib/x86_64-linux-gnu/security/pam_sekimori.so', /^-rw-r--r-- root\/root/],
      ['etc/pam.d/sekimori-auth', /^-rw-r--r-- root\/root/],
      ['etc/modprobe.d/sekimori-usb.conf', /^-rw-r--r-- root\/root/],
      ['lib/udev/rules.d/70-sekimori-usb-readonly.rules', /^-rw-r--r-- root\/root/],
      ['usr/lib/sekimori/usb-readonly', /^-rwxr-xr-x root\/root/],
      ['usr/lib/sekimori/sekimori-peercred', /^-rwxr-xr-x root\/root/],
      ['usr/lib/sekimori/sekimori-exec-guard', /^-rwxr-xr-x root\/root/],
      ['usr/lib/sekimori/sekimori-file-log', /^-rwxr-xr-x root\/root/], // 持ち出しログ helper
      ['lib/systemd/system/sekimori-agent.service', /^-rw-r--r-- root\/root/],
      ['var/lib/sekimori-agent/', /^drwx------ root\/root/],
    ];
    for (const [path, mode] of expectations) expect(entry(path), path).toMatch(mode);
  });

  it('carries the fail-closed settings and a service that restarts the agent', () => {
    expect(readFileSync(join(x, 'etc/modprobe.d/sekimori-usb.conf'), 'utf8')).toMatch(/^options usbcore authorized_default=2$/m);
    const unit = readFileSync(join(x, 'lib/systemd/system/sekimori-agent.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/opt\/sekimori\/bin\/sekimori-agent run --state \/var\/lib\/sekimori-agent$/m);
    expect(unit).toMatch(/^Restart=always$/m);
    expect(readFileSync(join(x, 'etc/pam.d/sekimori-auth'), 'utf8')).toMatch(/^auth\s+required\s+pam_sekimori\.so socket=\/var\/lib\/sekimori-agent\/agent\.sock/m);
    expect(readFileSync(join(x, 'lib/x86_64-linux-gnu/security/pam_sekimori.so'))).toEqual(readFileSync(join(ROOT, 'dist/pam/pam_sekimori.so')));
  });

  it('has maintainer scripts that parse, and a runnable agent executable', () => {
    const ctl = mkdtempSync(join(tmpdir(), 'sekimori-debctl-'));
    try {
      execFileSync('dpkg-deb', ['-e', deb, ctl]);
      for (const s of ['postinst', 'prerm']) expect(spawnSync('sh', ['-n', join(ctl, s)]).status, s).toBe(0);
      expect(readFileSync(join(ctl, 'postinst'), 'utf8')).not.toMatch(/common-auth/); // never edits PAM stacks itself
    } finally {
      rmSync(ctl, { recursive: true, force: true });
    }
    const help = spawnSync(join(x, 'opt/sekimori/bin/sekimori-agent'), ['help'], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', TMPDIR: x } });
    expect(help.status).toBe(0);
    expect(help.stderr).toMatch(/sekimori-agent <command>/);
  });
});
