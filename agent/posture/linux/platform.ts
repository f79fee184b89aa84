/** Linux posture readings (sysfs, modprobe.d, udev rules, /etc/pam.d, passwd/shadow, dconf). */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ScreenLockPolicy } from '../../../protocol/policy-screen-lock.js';
import type { PostureControlReport } from '../../../protocol/posture.js';
import { writeFileDurably } from '../../durable.js';
import { usbDevicesDir } from '../../usb/linux/sysfs.js';
import type { PostureInputs, PosturePlatform } from '../platform.js';
import { enrolmentReport, usbEnforcedReport } from '../probe.js';
import { accounts, bootHold, pamServices, readonlyRule, readSmall, screenLock, screenLockTargets, usbHubs, type LinuxPostureRoots } from './read.js';

export interface LinuxPostureOptions extends Partial<LinuxPostureRoots> {
  /** Read each login account's own dconf settings with `runuser … dconf dump` (root on the real root only). */
  userSettings?: boolean;
}

export class LinuxPosturePlatform implements PosturePlatform {
  readonly name = 'linux';
  private readonly r: LinuxPostureRoots;
  private readonly userSettings: boolean;

  constructor(opts: LinuxPostureOptions = {}) {
    this.r = { root: opts.root ?? '/', sysRoot: opts.sysRoot ?? '/sys', procRoot: opts.procRoot ?? '/proc' };
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    this.userSettings = opts.userSettings ?? (isRoot && this.r.root === '/');
  }

  async read(inputs: PostureInputs): Promise<PostureControlReport[]> {
    const login = accounts(this.r);
    return [
      usbEnforcedReport(usbHubs(this.r.sysRoot), inputs.usbMode, usbDevicesDir('/sys')),
      bootHold(this.r),
      readonlyRule(this.r),
      pamServices(this.r),
      enrolmentReport(login, null),
      await screenLock(this.r, login.map((a) => a.name), inputs.screenLock.maxIdleMinutes, inputs.screenLock.enforce, this.userSettings),
    ];
  }

  screenLockPlan(policy: ScreenLockPolicy): { files: string[]; apply(): void } | null {
    if (!policy.enforce) return null;
    const targets = screenLockTargets(this.r, policy.maxIdleMinutes);
    const stale = targets.filter((t) => readSmall(t.path) !== t.text);
    if (!stale.length) return null;
    return {
      files: targets.map((t) => t.path),
      apply: () => {
        for (const t of stale) {
          mkdirSync(dirname(t.path), { recursive: true, mode: 0o755 });
          writeFileDurably(t.path, t.text, 0o644);
        }
        // Compiles /etc/dconf/db/local from local.d; without dconf installed there is no GNOME to lock.
        execFileSync('dconf', ['update'], { timeout: 10_000, stdio: 'ignore' });
      },
    };
  }
}
