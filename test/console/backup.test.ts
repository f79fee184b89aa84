/**
 * Console backup and restore (console/backup/) on real console data folders: a round trip keeps
 * every file, mode and row; and hostile files are refused before anything is written — a wrong
 * passphrase, a truncated file, a member swapped (with and without the manifest rewritten to match),
 * a `../x` member, an unknown member, a 0-byte database, a newer schema, absurd scrypt costs and
 * counts, a non-empty target. Also the pure checks (memberErrors, schemaErrors) table-driven.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bufferSource, scanArchive, writeArchive } from '../../console/backup/archive.js';
import { takeBackup } from '../../console/backup/backup.js';
import { backupCommands } from '../../console/backup/cli.js';
import { AlteredBackupError, WrongPassphraseError } from '../../console/backup/crypto.js';
import { keysAad, manifestCheck, memberErrors, schemaErrors, SCRYPT_DEFAULT, type BackupManifest } from '../../console/backup/format.js';
import { DamagedBackupError, inspectBackup, knownSchema, restoreBackup } from '../../console/backup/restore.js';
import { initConsole, openConsole } from '../../console/core/context.js';
import { modules } from '../../console/modules.js';
import { readTar, writeTar, type TarEntry } from '../../console/report/tar.js';

const PASS = 'correct horse battery staple 関守';
const known = knownSchema(modules);
let dir = '';
let dataA = '';
let dataB = '';
let fileA = '';
let fileB = '';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function backup(data: string, out: string, passphrase = PASS) {
  return takeBackup({ dataDir: data, out, passphrase, passphraseFrom: 'env', actor: 'tester' });
}

function restore(file: string, target: string, passphrase = PASS) {
  return restoreBackup({ file, dataDir: target, passphrase, actor: 'tester', known });
}

/** Rewrites a backup: `edit` changes members; `fixManifest` then makes the manifest agree with them again. */
function rewrite(src: string, edit: (entries: TarEntry[], m: BackupManifest) => void, fixManifest: boolean): string {
  const entries = readTar(readFileSync(src));
  const m = JSON.parse(entries[0]!.data.toString('utf8')) as BackupManifest;
  edit(entries, m);
  if (fixManifest) m.members = m.members.map((x) => {
    const e = entries.find((y) => y.name === x.name);
    return e ? { ...x, size: e.data.length, sha256: sha(e.data) } : x;
  });
  entries[0] = { name: 'manifest.json', data: Buffer.from(JSON.stringify(m)) };
  const out = join(dir, `edited-${Math.random().toString(16).slice(2)}.tar`);
  writeFileSync(out, writeTar(entries, new Date()));
  return out;
}

/** A ustar header with any name (writeTar refuses unsafe names: the attacker does not use it). */
function rawMember(name: string, data: Buffer): Buffer {
  const h = Buffer.alloc(512, 0);
  h.write(name, 0, 100, 'latin1');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(data.length.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512, 0);
  return Buffer.concat([h, data, pad]);
}

function expectNothingWritten(target: string) {
  expect(existsSync(target) ? readdirSync(target) : []).toEqual([]);
  expect(readdirSync(dir).filter((f) => f.includes('.restoring-'))).toEqual([]);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sekimori-backup-'));
  dataA = join(dir, 'a');
  dataB = join(dir, 'b');
  await initConsole(dataA, { sans: [], organisation: 'テスト市' });
  await initConsole(dataB, { sans: [], organisation: '別の市' });
  const ctx = openConsole(dataA);
  for (let i = 0; i < 50; i++) ctx.recordEvent({ type: 'admin.enroll_token_created', user: 'admin', data: { expiresAt: '2026-12-01T00:00:00.000Z', uses: i } });
  ctx.close();
  fileA = join(dir, 'a.backup');
  fileB = join(dir, 'b.backup');
  backup(dataA, fileA);
  backup(dataB, fileB);
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('round trip', () => {
  it('restores every file with init’s modes, every row, and records the restore in the restored store', () => {
    const target = join(dir, 'restored');
    const r = restore(fileA, target);
    expect(r.integrity).toBe('ok');
    expect((statSync(target).mode & 0o777).toString(8)).toBe('700');
    for (const f of ['ca-key.pem', 'server-key.pem', 'policy-signing-key.pem', 'secret.key', 'console.db']) expect((statSync(join(target, f)).mode & 0o777).toString(8), f).toBe('600');
    for (const f of ['ca.pem', 'server.pem', 'policy-signing-key.pub.pem', 'config.json', 'ca-key.pem', 'server-key.pem', 'policy-signing-key.pem', 'secret.key'])
      expect(readFileSync(join(target, f)).equals(readFileSync(join(dataA, f))), f).toBe(true);
    expect(existsSync(join(target, 'initial-admin.txt'))).toBe(false); // the first login's password is not carried
    const before = new Database(join(dataA, 'console.db'), { readonly: true });
    const after = new Database(join(target, 'console.db'), { readonly: true });
    const rows = (db: Database.Database) => db.prepare("SELECT seq, hash, type FROM events WHERE agent_id = 'console' ORDER BY seq").all() as { seq: number; hash: string; type: string }[];
    const a = rows(before);
    const b = rows(after);
    // The backup event is inside the snapshot; the restore event continues the console's chain.
    expect(b.slice(0, a.length)).toEqual(a);
    expect(b.map((x) => x.type).slice(-2)).toEqual(['admin.backup_taken', 'admin.console_restored']);
    expect(b.at(-1)!.seq).toBe(a.at(-1)!.seq + 1);
    before.close();
    after.close();
    // The restored folder is a working console: sealed secrets open with the restored secret.key.
    const ctx = openConsole(target);
    const sealed = ctx.seal('秘密');
    expect(ctx.open(sealed).toString()).toBe('秘密');
    expect(ctx.currentPolicy().policy.version).toBe(1);
    ctx.close();
  });

  it('verify reads the manifest without the passphrase', () => {
    const ins = inspectBackup(readFileSync(fileA), known);
    expect(ins.damage).toEqual([]);
    expect(ins.incompatible).toEqual([]);
    expect(ins.manifest.db.tables.events).toBeGreaterThanOrEqual(52);
    expect(ins.manifest.keys.logN).toBeGreaterThanOrEqual(15);
    expect(ins.manifest.members.map((m) => m.name).sort()).toEqual(['ca.pem', 'config.json', 'console.db', 'keys.enc', 'policy-signing-key.pub.pem', 'server.pem']);
    // No private key in clear anywhere in the file.
    const raw = readFileSync(fileA).toString('latin1');
    expect(raw).not.toContain('PRIVATE KEY');
    expect(raw).not.toContain(readFileSync(join(dataA, 'secret.key')).toString('latin1'));
  });

  it('refuses to overwrite an existing file, to back up an uninitialised or 0-byte store, and a short passphrase', () => {
    expect(() => backup(dataA, fileA)).toThrow(/already exists|既にあります/);
    expect(() => backup(join(dir, 'nothing'), join(dir, 'x.backup'))).toThrow(/not an initialised|初期化/);
    expect(() => backup(dataA, join(dir, 'short.backup'), 'short')).toThrow(/12/);
    const empty = join(dir, 'empty-db');
    mkdirSync(empty);
    for (const f of ['ca.pem', 'config.json']) writeFileSync(join(empty, f), readFileSync(join(dataA, f)));
    writeFileSync(join(empty, 'console.db'), '');
    expect(() => backup(empty, join(dir, 'empty.backup'))).toThrow(/0 bytes|0 バイト/);
    expect(existsSync(join(dir, 'empty.backup'))).toBe(false);
  });
});

describe('a backup that fails after its event', () => {
  it('records admin.backup_failed after admin.backup_taken (the event said a backup began)', () => {
    const data = join(dir, 'fail-src');
    // A copy of A's folder through a restore, so A's chain in the other tests is untouched.
    restore(fileA, data);
    expect(() => backup(data, join(dir, 'no-such-folder', 'x.backup'))).toThrow();
    const db = new Database(join(data, 'console.db'), { readonly: true });
    const last = db.prepare("SELECT type, data FROM events WHERE agent_id = 'console' ORDER BY seq DESC LIMIT 2").all() as { type: string; data: string }[];
    db.close();
    expect(last.map((x) => x.type)).toEqual(['admin.backup_failed', 'admin.backup_taken']);
    expect(JSON.parse(last[0]!.data).backupId).toBe(JSON.parse(last[1]!.data).backupId);
    expect(existsSync(join(dir, 'no-such-folder'))).toBe(false);
  });
});

describe('hostile backups are refused and nothing is written', () => {
  it('a wrong passphrase: a clear message, no folder, no staging left', () => {
    const target = join(dir, 'wrong-pass');
    expect(() => restore(fileA, target, 'not the passphrase at all')).toThrow(WrongPassphraseError);
    expect(() => restore(fileA, target, 'not the passphrase at all')).toThrow(/wrong passphrase|パスフレーズが違います/);
    expectNothingWritten(target);
  });

  it('a non-empty target folder', () => {
    const target = join(dir, 'busy');
    mkdirSync(target);
    writeFileSync(join(target, 'keep.txt'), 'x');
    expect(() => restore(fileA, target)).toThrow(/not empty|空ではありません/);
    expect(readdirSync(target)).toEqual(['keep.txt']);
  });

  const cases: { name: string; make: () => string; error: RegExp; verifyIntact?: boolean }[] = [
    { name: 'truncated by one block', make: () => { const b = readFileSync(fileA); const p = join(dir, 'trunc1'); writeFileSync(p, b.subarray(0, b.length - 512)); return p; }, error: /damaged|壊れて/ },
    { name: 'truncated in the middle', make: () => { const b = readFileSync(fileA); const p = join(dir, 'trunc2'); writeFileSync(p, b.subarray(0, Math.floor(b.length / 2 / 512) * 512)); return p; }, error: /damaged|壊れて/ },
    { name: 'empty file', make: () => { const p = join(dir, 'zero'); writeFileSync(p, ''); return p; }, error: /damaged|壊れて/ },
    { name: 'one byte flipped inside the db', make: () => { const b = Buffer.from(readFileSync(fileA)); b[b.length - 4096] ^= 1; const p = join(dir, 'flip'); writeFileSync(p, b); return p; }, error: /damaged|壊れて|SHA-256|canonical/ },
    { name: 'console.db swapped for another console’s (manifest not updated)', make: () => rewrite(fileA, (e) => { e.find((x) => x.name === 'console.db')!.data = readTar(readFileSync(fileB)).find((x) => x.name === 'console.db')!.data; }, false), error: /SHA-256|size|大きさ/ },
    {
      name: 'console.db swapped and the manifest rewritten to match: verify cannot tell, the passphrase can',
      make: () =>
        rewrite(fileA, (e, m) => {
          const other = readTar(readFileSync(fileB));
          e.find((x) => x.name === 'console.db')!.data = other.find((x) => x.name === 'console.db')!.data;
          m.db = (JSON.parse(other[0]!.data.toString('utf8')) as BackupManifest).db;
        }, true),
      error: /altered|改変/,
      verifyIntact: true,
    },
    { name: 'ca.pem swapped and the manifest rewritten', make: () => rewrite(fileA, (e) => { e.find((x) => x.name === 'ca.pem')!.data = readFileSync(join(dataB, 'ca.pem')); }, true), error: /altered|改変/, verifyIntact: true },
    { name: 'keys.enc taken from another backup', make: () => rewrite(fileA, (e, m) => { e.find((x) => x.name === 'keys.enc')!.data = readTar(readFileSync(fileB)).find((x) => x.name === 'keys.enc')!.data; m.keys = (JSON.parse(readTar(readFileSync(fileB))[0]!.data.toString('utf8')) as BackupManifest).keys; }, true), error: /altered|改変/, verifyIntact: true },
    { name: 'a 0-byte console.db (manifest rewritten)', make: () => rewrite(fileA, (e) => { e.find((x) => x.name === 'console.db')!.data = Buffer.alloc(0); }, true), error: /empty|空です/ },
    { name: 'an unknown extra member', make: () => rewrite(fileA, (e) => { e.push({ name: 'evil.sh', data: Buffer.from('rm -rf /') }); }, true), error: /unknown member|不明なメンバー/ },
    { name: 'a member listed twice', make: () => rewrite(fileA, (e) => { e.push({ name: 'ca.pem', data: e.find((x) => x.name === 'ca.pem')!.data }); }, true), error: /more than once|複数/ },
    { name: 'createdAt year 9999 and counts of 2^53 in the manifest', make: () => rewrite(fileA, (_e, m) => { m.createdAt = '9999-12-31T23:59:59.999Z'; m.db.tables.events = 2 ** 53; }, true), error: /manifest\.db\.tables\.events|damaged/ },
    { name: 'an scrypt cost of 2^40 (memory exhaustion)', make: () => rewrite(fileA, (_e, m) => { m.keys.logN = 40; }, true), error: /manifest\.keys\.logN/ },
    { name: 'an scrypt cost below the floor', make: () => rewrite(fileA, (_e, m) => { m.keys.logN = 10; }, true), error: /manifest\.keys\.logN/ },
    {
      name: 'a member named ../x (path traversal)',
      make: () => {
        const p = join(dir, 'traversal');
        writeFileSync(p, Buffer.concat([rawMember('../x', Buffer.from('owned')), Buffer.alloc(1024, 0)]));
        return p;
      },
      error: /bad entry name|damaged/,
    },
    {
      name: 'a member named /etc/passwd after valid members',
      make: () => {
        const good = readFileSync(fileA);
        const p = join(dir, 'absolute');
        writeFileSync(p, Buffer.concat([good.subarray(0, good.length - 1024), rawMember('/etc/passwd', Buffer.from('root::0:0')), Buffer.alloc(1024, 0)]));
        return p;
      },
      error: /bad entry name|damaged/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const file = c.make();
      const target = join(dir, `t-${Math.random().toString(16).slice(2)}`);
      expect(() => restore(file, target)).toThrow(c.error);
      expectNothingWritten(target);
      if (c.verifyIntact) expect(inspectBackup(readFileSync(file), known).damage).toEqual([]);
      else {
        let damaged = false;
        try {
          damaged = inspectBackup(readFileSync(file), known).damage.length > 0;
        } catch (e) {
          damaged = e instanceof DamagedBackupError;
        }
        expect(damaged).toBe(true);
      }
    });
  }

  it('a manifest whose text is not JSON', () => {
    const entries = readTar(readFileSync(fileA));
    entries[0] = { name: 'manifest.json', data: Buffer.from('{"format": "sekimori-console-backup",') };
    const p = join(dir, 'notjson');
    writeFileSync(p, writeTar(entries, new Date()));
    expect(() => restore(p, join(dir, 'nj'))).toThrow(/not JSON|JSON ではありません/);
  });

  it('a backup of a newer schema than this console knows: refused naming the module and versions', () => {
    const newer = rewrite(fileA, (_e, m) => { m.schema.core = (m.schema.core ?? 0) + 1; }, true);
    const target = join(dir, 'newer');
    expect(() => restore(newer, target)).toThrow(/newer|新しい版/);
    expectNothingWritten(target);
    const unknown = rewrite(fileA, (_e, m) => { m.schema.hologram = 1; }, true);
    expect(() => restore(unknown, target)).toThrow(/hologram/);
    const ins = inspectBackup(readFileSync(newer), known);
    expect(ins.damage).toEqual([]);
    expect(ins.incompatible.join()).toMatch(/core/);
  });

  it('AlteredBackupError is what an authenticated change gives (not a wrong passphrase)', () => {
    const file = rewrite(fileA, (e) => { e.find((x) => x.name === 'server.pem')!.data = readFileSync(join(dataB, 'server.pem')); }, true);
    expect(() => restore(file, join(dir, 'altered'))).toThrow(AlteredBackupError);
  });
});

describe('the streamed archive', () => {
  it('is byte for byte what console/report/tar.ts writes, and reads back the same members', () => {
    const dbPath = join(dir, 'member.bin');
    const big = Buffer.alloc(3 * 1024 * 1024 + 123, 7); // several chunks, not a whole block
    writeFileSync(dbPath, big);
    const entries = [{ name: 'manifest.json', data: Buffer.from('{}') }, { name: 'console.db', data: big }, { name: 'ca.pem', data: Buffer.alloc(0) }];
    const out = join(dir, 'stream.tar');
    const fd = openSync(out, 'w');
    writeArchive(fd, [entries[0]!, { name: 'console.db', path: dbPath, size: big.length }, entries[2]!], new Date('2026-11-30T00:00:00Z'));
    closeSync(fd);
    const expected = writeTar(entries, new Date('2026-11-30T00:00:00Z'));
    expect(readFileSync(out).equals(expected)).toBe(true);
    const refs = scanArchive(bufferSource(expected));
    expect(refs.map((r) => [r.name, r.size])).toEqual([['manifest.json', 2], ['console.db', big.length], ['ca.pem', 0]]);
  });
  const good = () => readFileSync(fileA);
  const hostile: [string, () => Buffer, RegExp][] = [
    ['data after the trailer', () => Buffer.concat([good(), Buffer.alloc(512, 0)]), /after the end|終端の後/],
    ['a non-zero byte in the trailer', () => { const b = Buffer.from(good()); b[b.length - 1] = 1; return b; }, /after the end|終端の後|canonical|bad entry/],
    ['non-zero padding after a member', () => { const b = Buffer.from(good()); const refs = scanArchive(bufferSource(b)); const m = refs.find((r) => r.size % 512 !== 0)!; b[m.offset + m.size] = 0x41; return b; }, /padding/],
    ['a header with a different mtime', () => { const b = Buffer.from(good()); const refs = scanArchive(bufferSource(b)); const h = refs[1]!.offset - 512; b.write('00000000001\0', h + 136, 'ascii'); return b; }, /mtime|canonical/],
    ['a header with a changed mode (checksum fixed)', () => {
      const b = Buffer.from(good());
      b.write('0000777\0', 100, 'ascii');
      b.write('        ', 148, 'ascii');
      let sum = 0;
      for (const x of b.subarray(0, 512)) sum += x;
      b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
      return b;
    }, /canonical/],
    ['a size of 2^53 in octal', () => { const b = Buffer.from(good()); b.write('77777777777\0', 124, 'ascii'); return b; }, /canonical|past the end|too large/],
  ];
  for (const [name, make, want] of hostile) it(`refuses ${name}`, () => expect(() => scanArchive(bufferSource(make()))).toThrow(want));
  it('a directory given as the backup file', () => {
    expect(() => restore(dir, join(dir, 'dir-as-file'))).toThrow(/regular file|通常のファイル/);
  });
});

describe('the CLI', () => {
  const cmds = backupCommands(modules);
  it('refuses without SEKIMORI_BACKUP_PASSPHRASE and without a terminal (never keys in clear)', async () => {
    const saved = process.env.SEKIMORI_BACKUP_PASSPHRASE;
    delete process.env.SEKIMORI_BACKUP_PASSPHRASE;
    try {
      await expect(cmds.backup!.run(['--data', dataA, '--out', join(dir, 'nopass.backup')], () => { throw new Error('unused'); })).rejects.toThrow(/SEKIMORI_BACKUP_PASSPHRASE/);
      expect(existsSync(join(dir, 'nopass.backup'))).toBe(false);
      await expect(cmds.restore!.run(['--file', fileA, '--data', join(dir, 'nopass')], () => { throw new Error('unused'); })).rejects.toThrow(/SEKIMORI_BACKUP_PASSPHRASE/);
    } finally {
      if (saved !== undefined) process.env.SEKIMORI_BACKUP_PASSPHRASE = saved;
    }
  });
});

describe('pure checks', () => {
  const m = inspectBackupManifest();
  function inspectBackupManifest(): () => BackupManifest {
    return () => inspectBackup(readFileSync(fileA), known).manifest;
  }
  it('schemaErrors', () => {
    const table: [Record<string, number>, Record<string, number>, RegExp | null][] = [
      [{ core: 2 }, { core: 2 }, null],
      [{ core: 1 }, { core: 2 }, null], // older: migrated forward on open
      [{ core: 3 }, { core: 2 }, /core.*3/],
      [{ core: 2, zz: 1 }, { core: 2 }, /zz/],
      [{ core: Number.MAX_SAFE_INTEGER }, { core: 2 }, /core/],
      [{ ['__proto__']: 1 }, { core: 2 }, /__proto__/],
      [{ constructor: 1 }, { core: 2 }, /constructor/],
    ];
    for (const [backup, here, want] of table) {
      const errs = schemaErrors(backup, here);
      if (want) expect(errs.join(), JSON.stringify(backup)).toMatch(want);
      else expect(errs, JSON.stringify(backup)).toEqual([]);
    }
  });
  it('memberErrors and the manifest schema', () => {
    const man = m();
    const entries = readTar(readFileSync(fileA)).map((e) => ({ name: e.name, size: e.data.length, sha256: sha(e.data) }));
    expect(memberErrors(man, entries)).toEqual([]);
    expect(memberErrors(man, entries.filter((e) => e.name !== 'keys.enc')).join()).toMatch(/keys\.enc/);
    expect(memberErrors({ ...man, members: man.members.filter((x) => x.name !== 'ca.pem') }, entries).join()).toMatch(/ca\.pem/);
    expect(memberErrors({ ...man, db: { ...man.db, pageCount: man.db.pageCount + 1 } }, entries).join()).toMatch(/page count|ページ数/);
    expect(manifestCheck.check({ ...man, extra: 1 })).toBe(false);
    expect(manifestCheck.check({ ...man, keys: { ...man.keys, r: 1_000_000 } })).toBe(false);
    expect(manifestCheck.check({ ...man, formatVersion: 2 })).toBe(false);
    // The additional data ignores key order but not values.
    const reordered = Object.fromEntries(Object.entries(man).reverse()) as unknown as BackupManifest;
    expect(keysAad(reordered).equals(keysAad(man))).toBe(true);
    expect(keysAad({ ...man, createdAt: '2020-01-01T00:00:00.000Z' }).equals(keysAad(man))).toBe(false);
    expect(SCRYPT_DEFAULT.logN).toBeGreaterThanOrEqual(15);
  });
});
