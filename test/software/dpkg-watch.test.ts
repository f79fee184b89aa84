/**
 * The dpkg watch's fallback poll (agent/software/linux/platform.ts): every 30 s it compares two
 * stat() results and reads dpkg's status again only when they differ — re-reading it every 30 s
 * was the idle agent's largest CPU cost. Real files and inotify, a fake clock for the poll.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { dpkgStamp, LinuxSoftwarePlatform } from '../../agent/software/linux/platform.js';
import { defaultSoftwarePolicy } from '../../protocol/policy-software.js';

const dirs: string[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** dpkg's way: write status-new, rename it over status. */
function dpkgWrites(adminDir: string, text: string): void {
  writeFileSync(join(adminDir, 'status-new'), text);
  renameSync(join(adminDir, 'status-new'), join(adminDir, 'status'));
}

describe.skipIf(process.platform !== 'linux')('dpkg watch fallback poll', () => {
  it('dpkgStamp: same files → same stamp; status replaced → another; missing → "-"', () => {
    const admin = mkdtempSync(join(tmpdir(), 'sekimori-dpkg-'));
    dirs.push(admin);
    expect(dpkgStamp(admin)).toBe('- -');
    dpkgWrites(admin, 'Package: a\nStatus: install ok installed\n\n');
    const a = dpkgStamp(admin);
    expect(a).not.toBe('- -');
    expect(dpkgStamp(admin)).toBe(a);
    dpkgWrites(admin, 'Package: a\nStatus: install ok installed\n\n'); // same content, new file
    expect(dpkgStamp(admin)).not.toBe(a);
  });

  it('the poll calls onChange only after dpkg changed something', async () => {
    const admin = mkdtempSync(join(tmpdir(), 'sekimori-dpkg-'));
    dirs.push(admin);
    dpkgWrites(admin, 'Package: a\nStatus: install ok installed\n\n');
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const policy = defaultSoftwarePolicy();
    policy.packages = { ...policy.packages, adminDir: admin, root: '/' };
    const source = new LinuxSoftwarePlatform().installed(policy)!;
    let calls = 0;
    const stop = source.watch(() => calls++, () => undefined);
    try {
      vi.advanceTimersByTime(95_000); // three polls, nothing changed
      expect(calls).toBe(0);
      // Changed behind inotify's back (the watcher may also see it: then the poll must not repeat it).
      dpkgWrites(admin, 'Package: a\nStatus: install ok installed\n\nPackage: b\nStatus: install ok installed\n\n');
      await new Promise((r) => setTimeout(r, 400)); // real time: inotify's 150 ms debounce, if it fired
      vi.advanceTimersByTime(30_000);
      expect(calls).toBe(1);
      vi.advanceTimersByTime(90_000);
      expect(calls).toBe(1);
    } finally {
      stop();
    }
  });
});
