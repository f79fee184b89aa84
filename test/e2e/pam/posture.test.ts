/**
 * Posture's PAM reading against the real PAM tier (issue 16): a test service in /etc/pam.d that
 * @includes a copy of the installer's sekimori-auth snippet (module loaded by absolute path from
 * dist/pam) is reported as including pam_sekimori — and Linux-PAM really runs the module in that
 * stack (pamtester is refused: the agent's socket is absent, fail closed). With the include removed
 * the control flips to "not included", and the same pamtester call succeeds on the password step
 * alone: the posture verdict and PAM's behaviour agree. The host's own services are not touched.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pamServices } from '../../../agent/posture/linux/read.js';
import { ROOT, tempDir } from '../../integration/harness.js';
import { isRoot, requireTools } from '../tools.js';

const MODULE = join(ROOT, 'dist/pam/pam_sekimori.so');
const check = requireTools('PAM (pamtester + built pam_sekimori.so)', ['pamtester', MODULE], 'apt-get install pamtester gcc libpam0g-dev && npm run build', {
  missing: isRoot() ? [] : ['root (the test writes /etc/pam.d/sekimori-test-*)'],
});

describe.skipIf(!check.ok)('PAM tier: posture reads the real stack', () => {
  const id = randomBytes(6).toString('hex');
  const service = `sekimori-test-${id}`;
  const snippet = `sekimori-test-${id}-auth`;
  let work = '';
  const roots = { root: '/', sysRoot: '/sys', procRoot: '/proc' };
  const pam = () => spawnSync('pamtester', [service, 'nobody', 'authenticate'], { input: '123456\n', encoding: 'utf8', timeout: 20_000 });
  beforeAll(() => {
    work = tempDir('pam-posture');
    const installer = readFileSync(join(ROOT, 'installers/linux/pam/sekimori-auth'), 'utf8');
    // The installer's snippet, with the module by absolute path and sockets where no agent listens.
    writeFileSync(
      `/etc/pam.d/${snippet}`,
      installer.replace(/^auth(\s+)required(\s+)pam_sekimori\.so socket=\S+ unlock_socket=\S+/m, `auth$1required$2${MODULE} socket=${join(work, 'agent.sock')} unlock_socket=${join(work, 'unlock.sock')}`),
    );
  });
  const stack = (withMfa: boolean) =>
    writeFileSync(`/etc/pam.d/${service}`, ['# Sekimori posture PAM tier test service (removed after the test)', 'auth     required  pam_permit.so', `${withMfa ? '' : '# '}@include ${snippet}`, 'account  required  pam_permit.so', ''].join('\n'));

  afterAll(() => {
    rmSync(`/etc/pam.d/${service}`, { force: true });
    rmSync(`/etc/pam.d/${snippet}`, { force: true });
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('the snippet as installed is read as requiring the module', () => {
    expect(readFileSync(`/etc/pam.d/${snippet}`, 'utf8')).toContain(`required    ${MODULE} socket=`);
  });

  it('included → ok, and PAM runs the module (no agent: refused)', () => {
    stack(true);
    const r = pamServices(roots, [service]);
    expect(r).toMatchObject({ state: 'ok', detail: { services: [{ name: service, present: true, included: true }] } });
    expect(r.evidence[0]).toContain(`/etc/pam.d/${service}:3 @include ${snippet}`);
    expect(r.evidence[0]).toContain(`(${MODULE} present)`);
    const p = pam();
    expect(p.status, p.stdout + p.stderr).not.toBe(0);
    expect(p.stdout + p.stderr).toMatch(/Authentication failure|認証/);
  });

  it('include removed → the control flips to fail, and PAM lets the password step alone decide', () => {
    stack(false);
    const r = pamServices(roots, [service]);
    expect(r).toMatchObject({ state: 'fail', detail: { services: [{ name: service, present: true, included: false }] } });
    expect(r.evidence[0]).toMatch(new RegExp(`^${service}: NOT included`));
    const p = pam();
    expect(p.status, p.stdout + p.stderr).toBe(0);
  });
});
