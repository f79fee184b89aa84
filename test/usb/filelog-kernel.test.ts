/**
 * 持ち出しログ on the real kernel: the real helper (built from source) and the agent's Linux file log
 * (agent/usb/filelog/linux/filelog.ts) watch a "medium" this test mounts in a private mount
 * namespace of its own — a tmpfs, and a vfat image on a loop device (what sticks carry) — and
 * every file written there must come back as one usb.file_written with the right relative path,
 * size, SHA-256 and writer. The USB side (sysfs ↔ mountinfo) is the QEMU tier's job; here the
 * medium's major:minor is given directly. Skips loudly when not root or a tool is missing.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NewEvent } from '../../agent/capability.js';
import { parseMountinfo, pathHash, type UsableMedium } from '../../agent/usb/filelog/decide.js';
import { LinuxFileLog } from '../../agent/usb/filelog/linux/filelog.js';
import { eventDataErrors, type UsbFileWrittenData } from '../../protocol/event-data.js';
import { waitFor } from '../integration/harness.js';
import { haveCommand, isRoot, requireTools } from '../e2e/tools.js';
import { ROOT, workDir } from '../e2e/software/preexec-ns.js';

const linux = process.platform === 'linux';
const work = linux ? workDir('filelog-kernel') : '';
function build(): { path: string | null; error: string } {
  const out = join(work, 'sekimori-file-log');
  const r = spawnSync('make', ['-s', '-C', join(ROOT, 'installers/linux/file-log'), `SRC=${join(ROOT, 'agent/usb/filelog/linux/sekimori-file-log.c')}`, `OUT=${out}`], { encoding: 'utf8', timeout: 120_000 });
  return r.status === 0 ? { path: out, error: '' } : { path: null, error: (r.stderr || r.error?.message || 'make failed').trim() };
}
const built = linux && isRoot() ? build() : { path: null, error: 'not root on Linux' };
const why: string[] = [];
if (!linux) why.push('Linux (fanotify)');
else if (!isRoot()) why.push('root (fanotify FAN_MARK_FILESYSTEM needs CAP_SYS_ADMIN)');
else if (!built.path) why.push(`the helper built from source (${built.error})`);
const tools = requireTools('持ち出しログ (real fanotify)', ['unshare', 'nsenter', 'mount', 'setpriv', 'make', 'gcc'], 'apt-get install util-linux mount make gcc libc6-dev (and run as root)', { missing: why });
const kernelExt4 = linux && /\text4$/m.test(readFileSync('/proc/filesystems', 'utf8'));
const kernelVfat = linux && /\tvfat$/m.test(readFileSync('/proc/filesystems', 'utf8'));
// What sticks carry; where this kernel has no vfat (a container's kernel without modules) the second medium is a tmpfs.
if (tools.ok && !kernelVfat) process.stderr.write('\n*** 持ち出しログ: this kernel has no vfat (/proc/filesystems): the second medium is a tmpfs (the QEMU tier mounts a real vfat stick)\n');
const vfat = tools.ok && kernelVfat && requireTools('持ち出しログ on vfat (loop device)', ['mkfs.vfat', 'losetup'], 'apt-get install dosfstools util-linux').ok;
afterAll(() => work && rmSync(work, { recursive: true, force: true }));

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** Runs a shell script inside the namespace, as `uid` (setpriv) when given. Bounded. */
function sh(prefix: string[], script: string, uid?: number): void {
  const cmd = uid === undefined ? ['sh', '-c', script] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'sh', '-c', script];
  const r = spawnSync(prefix[0]!, [...prefix.slice(1), ...cmd], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`script failed (${r.status}): ${r.stderr}`);
}

const medium = (port: string): UsableMedium => ({
  port,
  access: 'allow',
  exceptionId: null,
  device: { port, vendorId: '0781', productId: '5567', serialHex: Buffer.from('4C530001').toString('hex'), descriptorHash: 'b'.repeat(64), label: 'SanDisk Cruzer', serial: '4C530001', access: 'allow', exceptionId: null },
});

describe.skipIf(!tools.ok)('持ち出しログ: the real helper on the real kernel', () => {
  let holder: ReturnType<typeof spawn>;
  let prefix: string[];
  const mnt = join(work, 'mnt');
  const mnt2 = join(work, 'mnt-vfat');
  const events: NewEvent[] = [];
  const extraBlocks: { port: string; at: string }[] = [];
  let log: LinuxFileLog;
  const majMinAt = (p: string): string[] => parseMountinfo(readFileSync(`/proc/${holder.pid}/mountinfo`, 'latin1')).filter((e) => e.mountPoint.toString() === p).map((e) => e.majMin);
  const written = () => events.filter((e) => e.type === 'usb.file_written').map((e) => ({ user: e.user, ...(e.data as UsbFileWrittenData) }));
  const byPath = (p: string) => written().filter((w) => w.path === p);

  beforeAll(async () => {
    chmodSync(work, 0o755); // the writer of the first case is nobody
    mkdirSync(mnt, { recursive: true });
    mkdirSync(mnt2, { recursive: true });
    holder = spawn('unshare', ['-m', '--propagation', 'private', '--', 'sh', '-c', 'mount -t tmpfs -o size=256m,mode=0777 sekimori-filelog "$0" && echo mounted && exec sleep 3600', mnt], { stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((res, rej) => {
      const t = setTimeout(() => rej(new Error('namespace holder did not mount within 10 s')), 10_000);
      holder.stdout!.on('data', (b: Buffer) => b.toString().includes('mounted') && (clearTimeout(t), res()));
      holder.once('exit', (c) => (clearTimeout(t), rej(new Error(`holder exited ${c}`))));
    });
    prefix = ['nsenter', '-t', String(holder.pid), '-m', '--'];
    log = new LinuxFileLog(
      { emit: (e) => (events.push(e), { id: randomUUID() } as never), log: () => undefined },
      {
        sysRoot: '/nonexistent',
        helper: built.path,
        prefix,
        hashCapBytes: 8 << 20,
        queueCap: 64,
        currentUser: () => 'session-user',
        mode: () => 'enforce',
        // The "USB device" 1-1 is the tmpfs, 1-2 the vfat image: whatever is mounted there now.
        blocks: () => [
          { port: '1-1', majMins: majMinAt(mnt) },
          { port: '1-2', majMins: majMinAt(mnt2) },
          ...extraBlocks.map((b) => ({ port: b.port, majMins: majMinAt(b.at) })),
        ],
      },
    );
    log.addMedium(medium('1-1'));
    await log.sync(new Set(['1-1']));
    await waitFor('the tmpfs medium is marked', () => log.stats.marks >= 1, 15_000);
  }, 60_000);

  afterAll(async () => {
    await log?.stop();
    holder?.kill('SIGKILL');
  });

  it('one event per file with the path relative to the medium, size, SHA-256 and the writer (uid → name)', async () => {
    sh(prefix, `mkdir -p "${mnt}/dir/深い" && chmod 0777 "${mnt}/dir" "${mnt}/dir/深い"`);
    // The writer stays alive a moment after its close: the helper reads the writer's uid from
    // /proc at once, and a writer already gone (under load) is recorded as the session's user.
    sh(prefix, `printf 'hello' > "${mnt}/a.txt" && printf 'nested' > "${mnt}/dir/深い/報告書.xlsx" && sleep 2`, 65534);
    await waitFor('two files recorded', () => byPath('a.txt').length === 1 && byPath('dir/深い/報告書.xlsx').length === 1, 20_000);
    const a = byPath('a.txt')[0]!;
    expect(a).toMatchObject({ size: 5, sha256: sha('hello'), hashSkipped: null, uid: 65534, userSource: 'writer', user: 'nobody', fsType: 'tmpfs' });
    expect(a.device).toMatchObject({ vendorId: '0781', productId: '5567', port: '1-1' });
    expect(byPath('dir/深い/報告書.xlsx')[0]).toMatchObject({ size: 6, sha256: sha('nested') });
    for (const w of written()) expect(eventDataErrors('usb.file_written', { ...w, user: undefined })).toEqual([]);
  });

  it('hostile names: newline, invalid UTF-8, RTL override, a 4 kB path — recorded, display-safe, told apart by the raw-path hash', async () => {
    const deep = Array.from({ length: 16 }, (_, i) => `${String(i).padStart(2, '0')}${'d'.repeat(240)}`).join('/'); // ≈ 3.9 kB
    sh(prefix, `cd "${mnt}" && printf x > "$(printf 'line1\\nline2')" && printf y > "$(printf 'bad\\377\\376')" && printf z > "$(printf 'invoice\\342\\200\\256gpj.exe')" && mkdir -p "${deep}" && printf w > "${deep}/f"`);
    await waitFor('four hostile names recorded', () => written().filter((w) => /^(line1|bad|invoice)|\/f$/.test(w.path)).length >= 4, 20_000);
    const names = written().map((w) => w.path);
    expect(names).toContain('line1\\x0aline2');
    expect(names).toContain('bad\uFFFD\uFFFD');
    expect(names).toContain('invoice\\u{202e}gpj.exe');
    const long = written().find((w) => w.path.endsWith('/f'))!;
    expect(long.pathHash).toBe(pathHash(Buffer.from(`${deep}/f`)));
    expect(written().find((w) => w.path.startsWith('bad'))!.pathHash).toBe(pathHash(Buffer.from([...Buffer.from('bad'), 0xff, 0xfe])));
  });

  it('a flood of small files: every one recorded exactly once; those past the queue without a hash, the rest hashed right', async () => {
    const before = written().length;
    sh(prefix, `mkdir "${mnt}/flood" && i=0; while [ $i -lt 500 ]; do printf "$i" > "${mnt}/flood/f$i"; i=$((i+1)); done`);
    await waitFor('500 files recorded', () => written().length - before >= 500 && log.pending === 0, 60_000);
    const flood = written().filter((w) => w.path.startsWith('flood/'));
    expect(new Set(flood.map((w) => w.path)).size).toBe(500);
    expect(flood).toHaveLength(500);
    for (const w of flood) {
      const i = w.path.slice('flood/f'.length);
      expect(w.size).toBe(i.length);
      if (w.sha256) expect(w.sha256).toBe(sha(i));
      else expect(w.hashSkipped).toBe('queue_full');
    }
    expect(flood.filter((w) => w.sha256).length).toBeGreaterThan(0);
  }, 90_000);

  it('a file past the hash cap is recorded with its size and no hash; a file removed before it was seen is recorded as removed', async () => {
    sh(prefix, `head -c 9437184 /dev/zero > "${mnt}/big.bin" && exec 3>"${mnt}/gone.txt" && printf 'secret' >&3 && rm "${mnt}/gone.txt" && exec 3>&-`);
    await waitFor('big and gone recorded', () => byPath('big.bin').length === 1 && byPath('gone.txt').length === 1, 20_000);
    expect(byPath('big.bin')[0]).toMatchObject({ size: 9437184, sha256: null, hashSkipped: 'too_large' });
    expect(byPath('gone.txt')[0]).toMatchObject({ size: 6, sha256: null, hashSkipped: 'removed' });
  });

  it(`a second medium (${vfat ? 'vfat on a loop device' : 'tmpfs: no vfat in this kernel'}) mounted after the watch began (the helper says MNT), then unmounted: watched only while mounted`, async () => {
    const img = join(work, 'stick.img');
    if (vfat) {
      const r = spawnSync('sh', ['-c', `truncate -s 32M "${img}" && mkfs.vfat -n STICK "${img}" >/dev/null`], { encoding: 'utf8', timeout: 60_000 });
      expect(r.status, r.stderr).toBe(0);
    }
    log.addMedium(medium('1-2'));
    const marksBefore = log.stats.marks;
    sh(prefix, vfat ? `mount -o loop "${img}" "${mnt2}"` : `mount -t tmpfs -o size=16m sekimori-stick "${mnt2}"`);
    // No sync() call: the helper's MNT line makes the file log look again.
    await waitFor('the vfat medium is marked', () => log.stats.marks > marksBefore, 20_000);
    sh(prefix, `printf 'on the stick' > "${mnt2}/REPORT.TXT"`);
    await waitFor('the vfat file recorded', () => byPath('REPORT.TXT').length === 1, 20_000);
    expect(byPath('REPORT.TXT')[0]).toMatchObject({ size: 12, sha256: sha('on the stick'), fsType: vfat ? 'vfat' : 'tmpfs', uid: 0, user: 'root' });
    expect(byPath('REPORT.TXT')[0]!.device.port).toBe('1-2');
    sh(prefix, `umount "${mnt2}"`);
    await waitFor('the unmounted medium is no longer a target', () => majMinAt(mnt2).length === 0, 10_000);
    await log.sync(new Set(['1-1', '1-2']));
    sh(prefix, `printf 'underneath' > "${mnt2}/UNDER.TXT"`); // the directory under the mount point: not the medium
    sh(prefix, `printf 'control' > "${mnt}/control.txt"`); // positive control: the tmpfs is still watched
    await waitFor('the control file recorded', () => byPath('control.txt').length === 1, 20_000);
    expect(byPath('UNDER.TXT')).toEqual([]);
  }, 90_000);

  it.skipIf(!kernelExt4 || !haveCommand('mkfs.ext4') || !haveCommand('losetup'))('the same device unmounted and mounted again (same device number, new filesystem) is watched again', async () => {
    const img = join(work, 'ext4.img');
    const mk = spawnSync('sh', ['-c', `truncate -s 16M "${img}" && mkfs.ext4 -q -F "${img}" && losetup -f --show "${img}"`], { encoding: 'utf8', timeout: 60_000 });
    expect(mk.status, mk.stderr).toBe(0);
    const loop = mk.stdout.trim();
    try {
      log.addMedium(medium('1-3'));
      const blocksBefore = log.stats.marks;
      const mnt3 = join(work, 'mnt-ext4');
      mkdirSync(mnt3, { recursive: true });
      extraBlocks.push({ port: '1-3', at: mnt3 });
      for (const round of [1, 2]) {
        const marks = log.stats.marks;
        sh(prefix, `mount "${loop}" "${mnt3}"`);
        await waitFor(`round ${round}: marked`, () => log.stats.marks > marks, 20_000);
        sh(prefix, `printf 'round ${round}' > "${mnt3}/r${round}.txt" && umount "${mnt3}"`);
        await waitFor(`round ${round}: recorded`, () => byPath(`r${round}.txt`).length === 1, 20_000);
        expect(byPath(`r${round}.txt`)[0]).toMatchObject({ size: 7, fsType: 'ext4' });
      }
      expect(log.stats.marks).toBeGreaterThanOrEqual(blocksBefore + 2);
      // Unmounted and mounted again in one breath (no look in between sees it gone): the new mount
      // instance is marked again (every mount-table change marks every target again; the kernel even
      // reuses the mount id).
      sh(prefix, `mount "${loop}" "${mnt3}"`);
      await waitFor('round 3: marked', () => byPath('r2.txt').length === 1 && log.stats.marks >= blocksBefore + 3, 20_000);
      const marks = log.stats.marks;
      sh(prefix, `umount "${mnt3}" && mount "${loop}" "${mnt3}"`);
      await waitFor('round 4: the quick remount marked again', () => log.stats.marks > marks, 20_000);
      sh(prefix, `printf 'round 4' > "${mnt3}/r4.txt" && umount "${mnt3}"`);
      await waitFor('round 4: recorded', () => byPath('r4.txt').length === 1, 20_000);
    } finally {
      spawnSync('losetup', ['-d', loop], { timeout: 10_000 });
    }
  }, 90_000);

  it.skipIf(!haveCommand('nsenter'))('the helper exits when the agent goes (stdin closed)', async () => {
    const r = spawnSync(prefix[0]!, [...prefix.slice(1), built.path!], { input: '', encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^READY \d+\n$/);
  });
});
