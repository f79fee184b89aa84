/**
 * Issue 10, item 12: a terminal can take another terminal's host name through its heartbeat, so a
 * name alone must never stand for a terminal in the console's lists. Names that staff would read
 * as the same collide; colliding names carry the first 8 hex of the terminal id.
 */
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { migrate } from '../../console/core/db.js';
import { coreMigrations } from '../../console/core/schema.js';
import { collidingIds, hostnameKey, terminalName, terminalNames } from '../../console/web/queries.js';

const A = 'aaaaaaaa-0000-4000-8000-000000000001';
const B = 'bbbbbbbb-0000-4000-8000-000000000002';
const C = 'cccccccc-0000-4000-8000-000000000003';

describe('host names that read the same', () => {
  it.each([
    ['PC-01', 'pc-01'],
    ['pc-01', 'pc-01 '],
    ['pc-01', 'pc\u200b-01'], // zero-width space
    ['pc-01', 'pc-01\u00ad'], // soft hyphen
    ['ＰＣ－０１', 'pc-01'], // full-width forms (NFKC)
    ['\u2060pc-01', 'pc-01'], // word joiner
  ])('%j and %j collide', (x, y) => {
    expect(hostnameKey(x)).toBe(hostnameKey(y));
  });
  it.each([
    ['pc-01', 'pc-02'],
    ['pc-01', 'pc-1'],
  ])('%j and %j do not', (x, y) => {
    expect(hostnameKey(x)).not.toBe(hostnameKey(y));
  });
});

describe('display names', () => {
  it('flags only the terminals whose names collide', () => {
    expect(collidingIds([{ id: A, hostname: 'pc-01' }, { id: B, hostname: 'PC-01' }, { id: C, hostname: 'pc-02' }])).toEqual(new Set([A, B]));
  });

  it.each([
    ['<script>alert(1)</script>'],
    ['\u001b[31mred'],
    ['x'.repeat(300)],
  ])('keeps the id prefix and stays within 64 characters for %j', (hostname) => {
    const label = terminalName(hostname, A, true);
    expect(label.endsWith(' (aaaaaaaa)')).toBe(true);
    expect(Array.from(label).length).toBeLessThanOrEqual(64);
    expect(label).not.toMatch(/[\u0000-\u001f]/);
  });

  it('terminalNames gives the id prefix where names collide, the plain name elsewhere', () => {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE schema_migrations (module TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (module, version))');
    migrate(db, 'core', coreMigrations);
    const add = db.prepare("INSERT INTO agents (id, hostname, cert_fingerprint, enrolled_at) VALUES (?, ?, 'fp', 'now')");
    add.run(A, 'madoguchi-01');
    add.run(B, 'madoguchi-01'); // B took A's name
    add.run(C, 'kazei-02');
    expect(terminalNames(db)).toEqual(
      new Map([
        [A, 'madoguchi-01 (aaaaaaaa)'],
        [B, 'madoguchi-01 (bbbbbbbb)'],
        [C, 'kazei-02'],
      ]),
    );
  });
});
