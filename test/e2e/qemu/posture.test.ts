/**
 * Posture on a real kernel (issue 16), one QEMU boot with `usbcore authorized_default=2` (as the
 * installer's modprobe.d file sets it): the agent's readers report the boot-time hold configured
 * and in effect (ok); without the modprobe.d file the same kernel value is reported as not
 * configured (fail); the root hubs' hold is read from the real sysfs before and after the agent's
 * write. Reuses vm.ts unchanged with a guest script of its own.
 */
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostureControlReport } from '../../../protocol/posture.js';
import { tempDir, waitFor } from '../../integration/harness.js';
import { requireTools } from '../tools.js';
import { INITRD, KERNEL, ROOT, Vm } from './vm.js';

const check = requireTools('qemu (real kernel)', ['qemu-system-x86_64'], 'apt-get install qemu-system-x86 udev busybox-static cpio e2fsprogs && bash test/e2e/qemu/provision.sh', {
  missing: existsSync(KERNEL) && existsSync(INITRD) ? [] : ['.tools/qemu (run test/e2e/qemu/provision.sh)'],
});
const STEP = Number(process.env.SEKIMORI_QEMU_STEP_MS ?? 240_000);
type Readings = Record<'usb_boot_hold' | 'usb_enforced' | 'usb_readonly_rule', PostureControlReport>;

describe.skipIf(!check.ok)('posture on a real kernel (QEMU)', () => {
  let work = '';
  let state = '';
  let vm: Vm;
  const read = (name: string) => JSON.parse(vm.file(name)!) as Readings;

  beforeAll(async () => {
    work = tempDir('qemu-posture');
    state = join(work, 'state');
    mkdirSync(state, { recursive: true });
    await build({ entryPoints: [join(ROOT, 'test/e2e/qemu/posture-probe.ts')], bundle: true, platform: 'node', format: 'esm', target: 'node22', outfile: join(state, 'probe.mjs'), logLevel: 'error' });
    writeFileSync(join(state, 'env'), [`REPO=${ROOT}`, `NODE=${process.execPath}`].join('\n') + '\n');
    cpSync(join(ROOT, 'test/e2e/qemu/posture-guest.sh'), join(state, 'guest.sh'));
    vm = new Vm({ stateDir: state, usbcoreOptions: 'authorized_default=2', drives: [], bootDevices: ['usb-kbd,bus=xhci.0'], consolePort: null, memMb: 768 });
    await vm.boot();
    await waitFor('guest readings', () => vm.file('done') !== null || vm.proc.exitCode !== null || null, STEP, 500);
    expect(vm.file('done'), `guest log:\n${vm.file('guest.log')}\nserial:\n${vm.serialLog().slice(-3000)}`).not.toBeNull();
  }, 600_000);

  afterAll(async () => {
    await vm?.shutdown().catch(() => undefined);
    const out = join(ROOT, 'test-output/posture-qemu');
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out, { recursive: true });
    for (const f of ['guest.log', 'in-effect.txt', 'configured.json', 'hubs-held.json', 'unconfigured.json']) if (state && existsSync(join(state, f))) cpSync(join(state, f), join(out, f));
    if (work) rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it('hold configured (modprobe.d) and in effect (kernel parameter 2) → ok, with the evidence read', () => {
    expect(vm.file('in-effect.txt')!.trim()).toBe('2');
    const r = read('configured.json');
    expect(r.usb_boot_hold).toMatchObject({ state: 'ok', detail: { configured: true, inEffect: '2' } });
    expect(r.usb_boot_hold.evidence).toContain('/etc/modprobe.d/sekimori-usb.conf:6 options usbcore authorized_default=2');
    expect(r.usb_boot_hold.evidence).toContain('/sys/module/usbcore/parameters/authorized_default=2');
    expect(r.usb_readonly_rule.detail).toMatchObject({ present: false }); // the rule is there, its helper is not installed on this root
  });

  it('root hubs: the kernel default (2) holds; after the agent writes 0 they still do', () => {
    const before = read('configured.json').usb_enforced;
    expect(before.detail!.rootHubs).toBeGreaterThan(0);
    expect(before).toMatchObject({ state: 'ok' });
    expect(before.evidence.some((e) => /usb\d+\/authorized_default=2$/.test(e))).toBe(true);
    const after = read('hubs-held.json').usb_enforced;
    expect(after.state).toBe('ok');
    expect(after.evidence.some((e) => /usb\d+\/authorized_default=0$/.test(e))).toBe(true);
  });

  it('without the modprobe.d file → fail (in effect this boot, but not configured for the next)', () => {
    const r = read('unconfigured.json');
    expect(r.usb_boot_hold).toMatchObject({ state: 'fail', detail: { configured: false, inEffect: '2' } });
    expect(r.usb_boot_hold.evidence[0]).toMatch(/no modprobe.d option or kernel cmdline/);
  });
});
