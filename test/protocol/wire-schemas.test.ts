/**
 * One schema per wire message (protocol/api.ts, protocol/mfa/wire.ts, protocol/policy-usb.ts):
 * each accepts what its producer sends, and hostile bodies get errors that name the failing path.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { enrollRequestCheck, heartbeatRequestCheck, softwareSyncRequestCheck, uploadRequestCheck, type EnrollRequest, type HeartbeatRequest, type SoftwareSyncRequest } from '../../protocol/api.js';
import { chainEvent, genesisHash } from '../../protocol/events.js';
import { localVerifyRequestCheck, mfaReconcileEntryCheck, mfaReconcileRequestCheck, mfaVerifyRequestCheck } from '../../protocol/mfa/wire.js';
import { usbExceptionErrors, usbExceptionsResponseCheck, type UsbException } from '../../protocol/policy-usb.js';
import { pointerPath } from '../../protocol/wire-check.js';
import { agentBody } from '../../console/backbone/body.js';
import { parseHeartbeat } from '../../console/backbone/heartbeat.js';
import { parseBatch } from '../../console/backbone/batch-check.js';
import { parseSync } from '../../console/software/api.js';
import { HttpError } from '../../console/module.js';

const AGENT = '0b7c3c1e-8d0b-4b8e-9f5e-2d6f1a3b4c5d';
const HUGE = 'x'.repeat(1_000_000);
const TWO_53 = 2 ** 53;
const Y9999 = '9999-12-31T23:59:59.999Z';
/** {"a":{"a":…}} n levels deep, built as text (JSON.stringify cannot write it). */
const deep = (n: number): unknown => JSON.parse('{"a":'.repeat(n) + '1' + '}'.repeat(n));

const enroll: EnrollRequest = { token: 't'.repeat(43), agentId: AGENT, csrPem: '-----BEGIN CERTIFICATE REQUEST-----\n…', hostname: 'madoguchi-01', os: 'Debian GNU/Linux 12 / Linux 6.1.0', agentVersion: '0.1.0' };
const beat: HeartbeatRequest = { ts: new Date().toISOString(), hostname: 'madoguchi-01', os: 'Debian', agentVersion: '0.1.0', policyVersion: 3, outboxDepth: 0, monitorOnly: false };
const sync: SoftwareSyncRequest = {
  quarantine: [{ id: randomUUID(), path: '/home/yamada/Downloads/x.AppImage', sha256: 'a'.repeat(64), size: 1234, quarantinedAt: new Date().toISOString(), rule: 'default deny' }],
  results: [{ id: randomUUID(), ok: false, error: 'target exists' }],
};
const exception: UsbException = {
  id: 'ux-0123456789ab',
  agentId: AGENT,
  vendorId: '0781',
  productId: '5567',
  serial: 'AB\\x1bCD',
  serialHex: '41421b4344',
  access: 'readonly',
  grantedAt: '2026-11-30T00:00:00.000Z',
  expiresAt: '2026-11-30T02:00:00.000Z',
  grantedBy: 'admin',
  reason: '監査資料',
};

type Row = [name: string, body: unknown, error: RegExp | null];
const without = <T extends object>(o: T, k: keyof T) => Object.fromEntries(Object.entries(o).filter(([key]) => key !== k));

/** Runs one message's table: null = accepted; else the first error must match. */
function table(label: string, check: { check(x: unknown): boolean; errors(x: unknown, where?: string): string[] }, rows: Row[]) {
  describe(label, () => {
    it.each(rows)('%s', (_name, body, error) => {
      const errors = check.errors(body, 'body');
      expect(check.check(body)).toBe(error === null);
      if (error === null) expect(errors).toEqual([]);
      else {
        expect(errors.length).toBeGreaterThan(0);
        expect(errors.join('\n')).toMatch(error);
        for (const e of errors) expect(e.length).toBeLessThan(400); // bounded, even for hostile keys and values
      }
    });
  });
}

table('EnrollRequest', enrollRequestCheck, [
  ['what the agent sends', enroll, null],
  ['not an object', [enroll], /^body: must be object/],
  ['null', null, /^body: must be object/],
  ['token missing', without(enroll, 'token'), /^body\.token: missing/],
  ['token a number', { ...enroll, token: 123 }, /^body\.token: must be string/],
  ['token huge', { ...enroll, token: HUGE }, /^body\.token: must not have more than 200 characters/],
  ['agentId not a UUID', { ...enroll, agentId: 'AGENT' }, /^body\.agentId: must match pattern/],
  ['agentId upper case', { ...enroll, agentId: AGENT.toUpperCase() }, /^body\.agentId/],
  ['empty hostname', { ...enroll, hostname: '' }, /^body\.hostname: must not have fewer than 1 characters/],
  ['os an object', { ...enroll, os: { name: 'x' } }, /^body\.os: must be string/],
  ['extra member (closed)', { ...enroll, admin: true }, /^body\.admin: unknown member/],
  ['extra member with a hostile name', { ...enroll, ['\u001b[2J' + 'k'.repeat(500)]: 1 }, /^body\.\\u001b\[2Jk{60}: unknown member$/],
  ['token deeply nested', { ...enroll, token: deep(5000) }, /^body\.token: must be string/],
]);

table('HeartbeatRequest', heartbeatRequestCheck, [
  ['what the agent sends', beat, null],
  ['an empty host name (keeps the name the console has)', { ...beat, hostname: '' }, null],
  ['a year-9999 clock', { ...beat, ts: Y9999 }, null],
  ['ts without milliseconds', { ...beat, ts: '2026-11-30T00:00:00Z' }, /^body\.ts: must match pattern/],
  ['policyVersion 2^53', { ...beat, policyVersion: TWO_53 }, /^body\.policyVersion: must be <= 9007199254740991/],
  ['outboxDepth negative', { ...beat, outboxDepth: -1 }, /^body\.outboxDepth: must be >= 0/],
  ['outboxDepth a fraction', { ...beat, outboxDepth: 1.5 }, /^body\.outboxDepth: must be integer/],
  ['outboxDepth a string', { ...beat, outboxDepth: '0' }, /^body\.outboxDepth: must be integer/],
  ['monitorOnly "true"', { ...beat, monitorOnly: 'true' }, /^body\.monitorOnly: must be boolean/],
  ['hostname huge', { ...beat, hostname: HUGE }, /^body\.hostname: must not have more than 255 characters/],
  ['hostname nested 5000 deep', { ...beat, hostname: deep(5000) }, /^body\.hostname: must be string/],
  ['extra member', { ...beat, x: deep(5000) }, /^body\.x: unknown member/],
  ['everything missing', {}, /^body\.ts: missing\nbody\.hostname: missing/],
]);

const event = (over: Record<string, unknown> = {}) => ({ ...chainEvent(genesisHash(AGENT), { id: randomUUID(), agentId: AGENT, seq: 1, ts: '2026-11-30T00:00:00.000Z', type: 'agent.stopped', severity: 'notice', user: null, data: { pid: 1, reason: 'signal' } }), ...over });
table('UploadRequest', uploadRequestCheck, [
  ['one event', { batchId: 'b', events: [event()] }, null],
  ['no events', { batchId: 'b', events: [] }, null],
  ['events not an array', { batchId: 'b', events: {} }, /^body\.events: must be array/],
  ['seq 2^53', { batchId: 'b', events: [event({ seq: TWO_53 })] }, /^body\.events\[0\]\.seq: must be <= 9007199254740991/],
  ['seq 0', { batchId: 'b', events: [event({ seq: 0 })] }, /^body\.events\[0\]\.seq: must be >= 1/],
  ['severity unknown', { batchId: 'b', events: [event({ severity: 'meh' })] }, /^body\.events\[0\]\.severity: must be one of info, notice, warning, critical/],
  ['data an array', { batchId: 'b', events: [event({ data: [] })] }, /^body\.events\[0\]\.data: must be object/],
  ['an extra member on an event (not covered by its hash)', { batchId: 'b', events: [event({ note: 'x' })] }, /^body\.events\[0\]\.note: unknown member/],
  ['user huge', { batchId: 'b', events: [event({ user: HUGE })] }, /^body\.events\[0\]\.user: must not have more than 256 characters/],
  ['a year-9999 event (stored under its receipt time)', { batchId: 'b', events: [event({ ts: Y9999 })] }, null],
]);

table('SoftwareSyncRequest', softwareSyncRequestCheck, [
  ['what the agent sends', sync, null],
  ['size 2^53', { ...sync, quarantine: [{ ...sync.quarantine[0], size: TWO_53 }] }, /^body\.quarantine\[0\]\.size: must be <= 9007199254740991/],
  ['sha256 upper case', { ...sync, quarantine: [{ ...sync.quarantine[0], sha256: 'A'.repeat(64) }] }, /^body\.quarantine\[0\]\.sha256: must match pattern/],
  ['id not a UUID', { ...sync, results: [{ id: '../../etc', ok: true }] }, /^body\.results\[0\]\.id: must match pattern/],
  ['ok a string', { ...sync, results: [{ id: randomUUID(), ok: 'yes' }] }, /^body\.results\[0\]\.ok: must be boolean/],
  ['1001 results', { ...sync, results: Array.from({ length: 1001 }, () => ({ id: randomUUID(), ok: true })) }, /^body\.results: must not have more than 1000 items/],
  ['extra member in an entry', { ...sync, quarantine: [{ ...sync.quarantine[0], restore: true }] }, /^body\.quarantine\[0\]\.restore: unknown member/],
  ['path huge', { ...sync, quarantine: [{ ...sync.quarantine[0], path: HUGE }] }, /^body\.quarantine\[0\]\.path: must not have more than 4096 characters/],
]);

table('UsbExceptionsResponse (the agent checks what the console sends)', usbExceptionsResponseCheck, [
  ['a new exception (serialHex)', { serverTime: new Date().toISOString(), exceptions: [exception] }, null],
  ['an exception stored before serialHex', { serverTime: new Date().toISOString(), exceptions: [{ ...exception, serialHex: undefined }] }, null],
  ['any device of a VID:PID', { serverTime: new Date().toISOString(), exceptions: [{ ...exception, serial: null, serialHex: null }] }, null],
  ['a member a newer console adds (open)', { serverTime: new Date().toISOString(), exceptions: [{ ...exception, window: 'x' }] }, null],
  ['expiresAt in year 9999 (the console never grants more than 30 days; accepted as a time)', { serverTime: new Date().toISOString(), exceptions: [{ ...exception, expiresAt: Y9999 }] }, null],
  ['serialHex odd length', { serverTime: new Date().toISOString(), exceptions: [{ ...exception, serialHex: 'abc' }] }, /^body\.exceptions\[0\]\.serialHex/],
  ['serialHex upper case', { serverTime: new Date().toISOString(), exceptions: [{ ...exception, serialHex: 'AB' }] }, /^body\.exceptions\[0\]\.serialHex/],
  ['serialHex huge', { serverTime: new Date().toISOString(), exceptions: [{ ...exception, serialHex: 'ab'.repeat(5000) }] }, /^body\.exceptions\[0\]\.serialHex/],
  ['access unknown', { serverTime: new Date().toISOString(), exceptions: [{ ...exception, access: 'write' }] }, /^body\.exceptions\[0\]\.access: must be one of allow, readonly/],
  ['expiresAt not a time', { serverTime: new Date().toISOString(), exceptions: [{ ...exception, expiresAt: 'tomorrow' }] }, /^body\.exceptions\[0\]\.expiresAt: must match pattern/],
  ['vendorId with a path', { serverTime: new Date().toISOString(), exceptions: [{ ...exception, vendorId: '../x' }] }, /^body\.exceptions\[0\]\.vendorId/],
  ['a blank serial', { serverTime: new Date().toISOString(), exceptions: [{ ...exception, serial: '   ', serialHex: undefined }] }, /^body\.exceptions\[0\]\.serial/],
]);

table('MfaVerifyRequest', mfaVerifyRequestCheck, [
  ['what the agent sends', { user: 'yamada', code: '123456' }, null],
  ['a bad user name is for decide() to reject (and count), not a 400', { user: '../root', code: '1' }, null],
  ['user a number', { user: 1, code: '123456' }, /^body\.user: must be string/],
  ['code huge', { user: 'yamada', code: HUGE }, /^body\.code: must not have more than 256 characters/],
  ['extra member', { user: 'yamada', code: '123456', step: 1 }, /^body\.step: unknown member/],
]);

table('MfaReconcileRequest (envelope)', mfaReconcileRequestCheck, [
  ['entries', { entries: [{ anything: 1 }] }, null],
  ['entries not an array', { entries: 'x' }, /^body\.entries: must be array/],
  ['10001 entries', { entries: Array.from({ length: 10_001 }, () => ({})) }, /^body\.entries: must not have more than 10000 items/],
]);

table('MfaReconcileEntry (refused one by one in a 200)', mfaReconcileEntryCheck, [
  ['a step', { user: 'yamada', kind: 'step', step: 59_000_000, at: '2026-11-30T00:00:00.000Z' }, null],
  ['a recovery code', { user: 'yamada', kind: 'recovery', recoveryId: 3, at: '2026-11-30T00:00:00.000Z' }, null],
  ['a failure', { user: 'yamada', kind: 'failure', at: '2026-11-30T00:00:00.000Z' }, null],
  ['step 2^53', { user: 'yamada', kind: 'step', step: TWO_53, at: '2026-11-30T00:00:00.000Z' }, /body/],
  ['unknown kind', { user: 'yamada', kind: 'grant', at: '2026-11-30T00:00:00.000Z' }, /body/],
]);

table('LocalVerifyRequest (agent socket, open)', localVerifyRequestCheck, [
  ['what the PAM module sends', { user: 'yamada', code: '123456', service: 'login', tty: 'tty1', rhost: '' }, null],
  ['code a number', { user: 'yamada', code: 123456 }, /^body\.code: must be string/],
]);

describe('pointerPath', () => {
  it.each([
    ['', ''],
    ['/a', '.a'],
    ['/events/3/seq', '.events[3].seq'],
    ['/a~1b/c~0d', '.a/b.c~d'],
    ['/' + 'k'.repeat(500), '.' + 'k'.repeat(64)],
    ['/\u0000', '.\\u0000'],
  ])('%j → %j', (pointer, path) => expect(pointerPath(pointer)).toBe(path));
});

/** The console's one rule for agent bodies: 400 invalid_request, the failing paths in details; nothing repaired. */
describe('console: a bad body is one clear 400, the same everywhere', () => {
  const refusal = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(HttpError);
      const h = e as HttpError;
      return { status: h.status, code: h.code, message: h.message, details: h.details ?? [] };
    }
    throw new Error('accepted');
  };
  it.each([
    ['heartbeat: outboxDepth a string (was turned into 0)', () => parseHeartbeat({ ...beat, outboxDepth: 'many' }), 'body.outboxDepth: must be integer'],
    ['heartbeat: os a number (was turned into "")', () => parseHeartbeat({ ...beat, os: 7 }), 'body.os: must be string'],
    ['heartbeat: not an object', () => parseHeartbeat('beat'), 'body: must be object'],
    ['enrolment: agentId not a UUID', () => agentBody(enrollRequestCheck, { ...enroll, agentId: 'x' }), 'body.agentId: must match pattern'],
    ['software sync: size a string', () => parseSync({ ...sync, quarantine: [{ ...sync.quarantine[0], size: '1' }] }), 'body.quarantine[0].size: must be integer'],
  ])('%s', (_name, f, first) => {
    const r = refusal(f);
    expect(r).toMatchObject({ status: 400, code: 'invalid_request' });
    expect(r.message.startsWith(first)).toBe(true);
    expect(r.details[0]!.startsWith(first)).toBe(true);
  });
  it('events: a batch with a bad event names the event and member; nothing is stored', () => {
    const r = refusal(() => parseBatch({ batchId: 'b', events: [event(), event({ seq: 2, severity: 'loud' })] }, AGENT));
    expect(r).toMatchObject({ status: 400, code: 'invalid_events' });
    expect(r.details).toEqual(['events[1].severity: must be one of info, notice, warning, critical']);
  });
  it('events: a bad envelope is a 400 naming it', () => {
    expect(refusal(() => parseBatch({ batchId: 7, events: [] }, AGENT))).toMatchObject({ status: 400, details: ['body.batchId: must be string'] });
    expect(refusal(() => parseBatch({ batchId: 'b', events: [], more: 1 }, AGENT))).toMatchObject({ status: 400, details: ['body.more: unknown member'] });
  });
  it('events: more than 5000 is 413 before any event is looked at', () => {
    expect(refusal(() => parseBatch({ batchId: 'b', events: Array.from({ length: 5001 }, () => 0) }, AGENT))).toMatchObject({ status: 413 });
  });
  it('events: a year-9999 timestamp and a 2^53-1 seq are accepted (the first is sorted by receipt time)', () => {
    expect(parseBatch({ batchId: 'b', events: [event({ ts: Y9999 })] }, AGENT)).toHaveLength(1);
  });
  it('events: a ts that is no real instant is refused', () => {
    expect(refusal(() => parseBatch({ batchId: 'b', events: [event({ ts: '2026-13-45T99:99:99.999Z' })] }, AGENT)).details[0]).toBe('events[0].ts: not a real instant');
  });
  it('exceptions: the agent-side check of one exception names the path', () => {
    expect(usbExceptionErrors({ ...exception, serialHex: 'zz' })[0]).toMatch(/^exception\.serialHex: /);
    expect(usbExceptionErrors(exception)).toEqual([]);
  });
});
