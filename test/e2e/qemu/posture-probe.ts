/**
 * Bundled (esbuild) and run INSIDE the QEMU guest by posture.test.ts: the agent's own posture readers
 * on the real kernel's sysfs, /proc/cmdline and the guest's /etc/modprobe.d. Prints one JSON line.
 */
import { bootHold, readonlyRule, usbHubs } from '../../../agent/posture/linux/read.js';
import { usbEnforcedReport } from '../../../agent/posture/probe.js';

const r = { root: '/', sysRoot: '/sys', procRoot: '/proc' };
process.stdout.write(JSON.stringify({ usb_boot_hold: bootHold(r), usb_enforced: usbEnforcedReport(usbHubs('/sys'), 'enforce', '/sys/bus/usb/devices'), usb_readonly_rule: readonlyRule(r) }) + '\n');
