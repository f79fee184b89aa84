/**
 * Software event data as the agent produces it, against the declarations in
 * protocol/event-data.ts, with hostile file names (control characters, invalid UTF-16, huge
 * paths); and the pure parts of the console sync (what goes up, which restore ids are taken).
 */
import { describe, expect, it } from 'vitest';
import {
  actionErrorData,
  installedData,
  killedData,
  quarantinedData,
  removedData,
  restoredData,
  unauthorizedFileData,
  unauthorizedProcessData,
} from '../../agent/software/events.js';
import type { QuarantineRecord } from '../../agent/software/platform.js';
import { restoreIds, syncRequest } from '../../agent/software/sync.js';
import { eventDataErrors } from '../../protocol/event-data.js';
import { softwareSyncRequestCheck } from '../../protocol/api.js';

const SHA = 'ab'.repeat(32);
const U = (i: number) => `11111111-2222-4333-8444-${String(i).padStart(12, '0')}`;
const verdict = { allowed: false, reason: 'not_allowed' as const, rule: 'no rule allows it' };

const hostilePaths: [string, string][] = [
  ['plain', '/home/u/Downloads/tool'],
  ['control characters', '/tmp/a\x1b[2J\r\nFAKE\x00b'],
  ['lone surrogate', '/tmp/\ud800x'],
  ['64 KiB', '/tmp/' + 'x'.repeat(65_536)],
  ['rule text of 10 000 characters', '/opt/y'],
  ['Windows path', 'C:\\Users\\u\\AppData\\Local\\Temp\\x.exe'],
];

const record = (path: string): QuarantineRecord => ({
  id: '11111111-2222-4333-8444-555555555555',
  originalPath: path,
  sha256: SHA,
  size: 10,
  mode: 0o755,
  uid: 1000,
  gid: 1000,
  atimeMs: 0,
  mtimeMs: 0,
  quarantinedAt: '2026-01-01T00:00:00.000Z',
  rule: 'r'.repeat(5000),
});

describe('software event data against the declarations', () => {
  for (const [name, path] of hostilePaths) {
    it(name, () => {
      const v = name.startsWith('rule') ? { ...verdict, rule: 'r\x07'.repeat(5000) } : verdict;
      const target = { path, sha256: SHA };
      const cases: [string, unknown][] = [
        [
          'software.unauthorized_process',
          unauthorizedProcessData({ pid: 42, uid: null, target, exePath: path, exeSha256: SHA, script: { path, sha256: SHA }, deleted: true, verdict: v, mode: 'enforce', enforce: true, detectMs: 1.5 }),
        ],
        ['software.unauthorized_process', unauthorizedProcessData({ pid: 42, uid: 1000, target, exePath: path, exeSha256: null, script: null, deleted: false, verdict: v, mode: 'monitor', enforce: false, detectMs: 0 })],
        ['software.killed', killedData({ pid: 42, uid: 0, target, verdict: v, mode: 'enforce', killMs: 3 })],
        ['software.unauthorized_file', unauthorizedFileData({ real: path, rawPath: path + '-link', digest: { sha256: SHA, size: 1, uid: 0, mode: 0o104755 }, event: 'add', verdict: v, mode: 'enforce', quarantine: true, detectMs: 2 })],
        ['software.quarantined', quarantinedData(record(path), path, SHA, v, 'enforce')],
        ['software.restored', restoredData('id', record(path), path)],
        ['software.installed', installedData({ name: path, version: path, arch: '', previousVersion: path }, { allowed: false, rule: v.rule }, 'enforce')],
        ['software.removed', removedData({ name: path, version: '1', arch: 'amd64' })],
        ['agent.error', actionErrorData('kill', { pid: 42, path, error: 'kill failed' })],
        ['agent.error', actionErrorData('quarantine', { path, error: 'EACCES' })],
      ];
      for (const [type, data] of cases) {
        expect(eventDataErrors(type, data), type).toEqual([]);
        const json = JSON.stringify(data);
        expect(json).not.toMatch(/[\u0000-\u001f]/); // escaped control characters only
        expect(Buffer.byteLength(json)).toBeLessThan(64 * 1024);
      }
    });
  }

  it('the file mode is octal text of the permission bits only', () => {
    const d = unauthorizedFileData({ real: '/a', rawPath: '/a', digest: { sha256: SHA, size: 1, uid: 0, mode: 0o104755 }, event: 'change', verdict, mode: 'enforce', quarantine: false, detectMs: 0 });
    expect(d).toMatchObject({ fileMode: '4755', action: 'none' });
    expect('link' in d).toBe(false);
  });
});

describe('console sync, pure parts', () => {
  it('what goes up passes the wire check, newest 1000 only, display texts bounded', () => {
    const many = Array.from({ length: 1500 }, (_, i) => ({ ...record(`/tmp/\x1b${i}` + 'x'.repeat(3000)), id: `11111111-2222-4333-8444-${String(i).padStart(12, '0')}` }));
    const body = syncRequest(many, [{ id: '11111111-2222-4333-8444-555555555555', ok: false, error: 'gone' }]);
    expect(body.quarantine).toHaveLength(1000);
    expect(body.quarantine[0]!.id.endsWith('000000000500')).toBe(true);
    expect(softwareSyncRequestCheck.errors(body, 'body')).toEqual([]);
  });

  it.each([
    ['null', null, null],
    ['no list', { restore: 'x' }, null],
    ['empty', { restore: [] }, []],
    ['quarantine ids only', { restore: [U(1), 1, null, { id: U(2) }, 'x', '../../etc/passwd', 'ABCDEF01-2222-4333-8444-555555555555', ` ${U(4)}`, U(5)] }, [U(1), U(5)]],
    ['at most 100 per round', { restore: Array.from({ length: 500 }, (_, i) => U(i)) }, Array.from({ length: 100 }, (_, i) => U(i))],
  ])('restore ids: %s', (_n, body, ids) => expect(restoreIds(body)).toEqual(ids));

  it('a console asking to restore something that is no quarantine id does not block later syncs', () => {
    // Its result would carry the id back, and the console refuses a request with a non-UUID result id.
    const ids = restoreIds({ restore: ['not-an-id', U(7)] })!;
    const body = syncRequest([], ids.map((id) => ({ id, ok: false, error: 'gone' })));
    expect(softwareSyncRequestCheck.errors(body, 'body')).toEqual([]);
  });
});
