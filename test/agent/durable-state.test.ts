/**
 * Every agent state file goes through one durable writer (agent/durable.ts). Crash-shaped cases:
 * a temp file left behind by a crash is never read (the old content is), and a writer killed with
 * SIGKILL at arbitrary points leaves one complete version, never a torn file. The capabilities'
 * state readers fall back to their fail-closed defaults on hostile content.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { readJsonState, writeFileDurably, writeJsonState } from '../../agent/durable.js';
import { SoftwareState } from '../../agent/software/state.js';
import { isUnboundDevice } from '../../agent/usb/linux/platform.js';
import { EXCEPTIONS_FILE, UNBOUND_FILE, UsbState } from '../../agent/usb/state.js';

const dirs: string[] = [];
const temp = () => {
  const d = mkdtempSync(join(tmpdir(), 'sekimori-durable-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const EXCEPTION = {
  id: 'e1',
  agentId: 'agent-1',
  vendorId: '0781',
  productId: '5567',
  serial: 'ABC',
  serialHex: '414243',
  access: 'allow',
  grantedAt: '2026-01-01T00:00:00.000Z',
  expiresAt: '2026-01-02T00:00:00.000Z',
  grantedBy: 'admin',
  reason: 'test',
};

describe('writeFileDurably / readJsonState', () => {
  it('writes 0600 and reads back', () => {
    const d = temp();
    const f = join(d, 'sub', 'x.json');
    writeJsonState(f, { a: 1 });
    expect(readJsonState(f)).toEqual({ a: 1 });
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(d, 'sub'))).toEqual(['x.json']); // no temp file left after a good write
  });

  it('a temp file left by a crash is never read: the old content is', () => {
    const d = temp();
    const f = join(d, 'usb-unbound.json');
    writeJsonState(f, [{ kind: 'optical', bus: 'scsi', driver: 'sr', id: '0:0:0:0' }]);
    // The crash: the new content was half written to the temp file, the rename never happened.
    writeFileSync(`${f}.tmp-99999`, '[{"kind":"sdcard","bus":"mm');
    expect(readJsonState(f)).toEqual([{ kind: 'optical', bus: 'scsi', driver: 'sr', id: '0:0:0:0' }]);
    // The next write still commits, whatever the leftover.
    writeJsonState(f, []);
    expect(readJsonState(f)).toEqual([]);
  });

  it.each([
    ['missing file', null],
    ['empty file', ''],
    ['torn JSON', '{"a":'],
    ['binary garbage', '\u0000\u00ff\u0001'],
    ['a BOM before the JSON', '\ufeff{"a":1}'],
  ])('%s → undefined (callers fall back to their default)', (_name, content) => {
    const d = temp();
    const f = join(d, 'x.json');
    if (content !== null) writeFileSync(f, content);
    expect(readJsonState(f)).toBeUndefined();
  });

  it('a write that cannot commit throws and leaves the old content', () => {
    const d = temp();
    const f = join(d, 'x.json');
    writeJsonState(f, { v: 1 });
    mkdirSync(`${f}.tmp-${process.pid}`); // the temp path is taken by a folder: open fails
    expect(() => writeFileDurably(f, '{"v":2}')).toThrow();
    expect(readJsonState(f)).toEqual({ v: 1 });
  });

  it('a writer killed with SIGKILL mid-stream leaves one complete version', async () => {
    const d = temp();
    const f = join(d, 'packages.json');
    writeJsonState(f, { v: 0, pad: 'x'.repeat(100_000) });
    // The writer itself (protocol/durable-file.ts imports nothing of ours, so Node runs the .ts as it is);
    // writeJsonState is JSON.stringify + this writer.
    const durable = fileURLToPath(new URL('../../protocol/durable-file.ts', import.meta.url));
    // The child rewrites the file as fast as it can (bounded: 100 000 versions), saying when it started.
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { writeFileDurably } = await import(${JSON.stringify(durable)});
         process.stdout.write('go\\n');
         for (let v = 1; v <= 100000; v++) writeFileDurably(${JSON.stringify(f)}, JSON.stringify({ v, pad: 'y'.repeat(100000 + (v % 7) * 1000) }));`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`child ended before writing (${code})`)));
    });
    // Let it write a while: wait for at least one committed version after the first (bounded).
    for (let i = 0; i < 2000 && (readJsonState(f) as { v: number } | undefined)?.v === 0; i++) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const got = JSON.parse(readFileSync(f, 'utf8')) as { v: number; pad: string };
    expect(Number.isInteger(got.v)).toBe(true);
    expect(got.pad.length).toBe(got.v === 0 ? 100_000 : 100_000 + (got.v % 7) * 1000);
  });
});

describe('USB state files', () => {
  it('exceptions: only entries that pass the check are loaded; a save replaces the file durably', () => {
    const d = temp();
    writeFileSync(join(d, EXCEPTIONS_FILE), JSON.stringify([EXCEPTION, { ...EXCEPTION, id: 'e2', access: 'root' }, null, 'x', { id: 'e3' }]));
    const s = new UsbState(d);
    expect(s.loadExceptions().map((e) => e.id)).toEqual(['e1']);
    s.saveExceptions([]);
    expect(s.loadExceptions()).toEqual([]);
  });

  it.each([
    ['not an array', { kind: 'optical', bus: 'scsi', driver: 'sr', id: '0:0:0:0' }],
    ['climbs out of /sys/bus', [{ kind: 'optical', bus: '..', driver: 'sr', id: '0:0:0:0' }]],
    ['a slash in a name', [{ kind: 'sdcard', bus: 'mmc', driver: 'mmcblk/../../x', id: 'mmc0:1' }]],
    ['unknown kind', [{ kind: 'usb', bus: 'scsi', driver: 'sr', id: '0:0:0:0' }]],
    ['a number for a name', [{ kind: 'optical', bus: 'scsi', driver: 'sr', id: 7 }]],
    ['a name too long', [{ kind: 'optical', bus: 'scsi', driver: 'sr', id: 'a'.repeat(65) }]],
  ])('unbound drives: %s → nothing to bind', (_name, content) => {
    const d = temp();
    writeFileSync(join(d, UNBOUND_FILE), JSON.stringify(content));
    expect(new UsbState(d).loadUnbound(isUnboundDevice)).toEqual([]);
  });

  it('unbound drives: a save after a crash-left temp file is what the next start reads', () => {
    const d = temp();
    const s = new UsbState(d);
    s.saveUnbound([{ kind: 'optical', bus: 'scsi', driver: 'sr', id: '0:0:0:0' } as never]);
    writeFileSync(join(d, `${UNBOUND_FILE}.tmp-4242`), '[');
    expect(new UsbState(d).loadUnbound(isUnboundDevice)).toEqual([{ kind: 'optical', bus: 'scsi', driver: 'sr', id: '0:0:0:0' }]);
  });
});

describe('software state files', () => {
  it('restored files and the package snapshot round-trip; hostile entries are dropped', () => {
    const d = temp();
    const s = new SoftwareState(d);
    expect(existsSync(join(d, 'software'))).toBe(true);
    expect(s.loadPackages()).toBeNull(); // first start: nothing to compare with
    s.savePackages(new Map([['bash:amd64', { name: 'bash', version: '5.2', arch: 'amd64' }]]));
    expect([...(s.loadPackages() ?? new Map())]).toEqual([['bash:amd64', { name: 'bash', version: '5.2', arch: 'amd64' }]]);
    writeFileSync(join(d, 'software', 'packages.json'), JSON.stringify({ ok: { name: 'a', version: '1', arch: '' }, bad: { name: 1 }, worse: null }));
    expect([...(s.loadPackages() ?? new Map()).keys()]).toEqual(['ok']);
    writeFileSync(join(d, 'software', 'packages.json'), '[]');
    expect(s.loadPackages()).toBeNull();
    writeFileSync(join(d, 'software', 'restored.json'), JSON.stringify([{ path: '/home/u/x', sha256: 'a'.repeat(64) }, { path: 3 }, 'x']));
    expect(s.loadExemptions()).toEqual([{ path: '/home/u/x', sha256: 'a'.repeat(64) }]);
  });
});
