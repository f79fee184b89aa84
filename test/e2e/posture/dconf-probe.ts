/**
 * Bundled (esbuild) and run by dconf.test.ts inside a private mount namespace whose /etc/dconf is a
 * tmpfs: `enforce DUMP` puts the policy's screen lock in place exactly as the agent does (keyfile +
 * lock, then the real `dconf update`) and prints the posture reading; `read DUMP` only reads.
 * DUMP is a user's `dconf dump /org/gnome/desktop/` taken before, standing for that user's settings.
 */
import { readFileSync } from 'node:fs';
import { LinuxPosturePlatform } from '../../../agent/posture/linux/platform.js';
import { dconfInput } from '../../../agent/posture/linux/read.js';
import { screenLockReport } from '../../../agent/posture/probe.js';

const [mode, dumpFile] = process.argv.slice(2);
const policy = { maxIdleMinutes: 5, enforce: true };
if (mode === 'enforce') {
  const plan = new LinuxPosturePlatform({ userSettings: false }).screenLockPlan(policy);
  if (!plan) throw new Error('no plan: nothing to change?');
  plan.apply();
}
const dump = readFileSync(dumpFile!, 'utf8').replace(/^\[([^\]]*)\]$/gm, (_m, g: string) => (g === '/' ? '[org/gnome/desktop]' : `[org/gnome/desktop/${g}]`));
const input = await dconfInput({ root: '/', sysRoot: '/sys', procRoot: '/proc' }, [], false);
process.stdout.write(JSON.stringify(screenLockReport({ ...input, users: [{ user: 'staff', dump }] }, policy.maxIdleMinutes, policy.enforce)) + '\n');
