/**
 * The Windows user pipe's frames (agent/local/windows/user-pipe.ts) and the decisions fed from
 * them: table-driven, hostile input first. The broker's real behaviour is in
 * test/e2e/wine/apply.test.ts (wine 10, the packaged programs).
 */
import { describe, expect, it } from 'vitest';
import {
  accountOf,
  answerFrame,
  BROKER_MAX_FRAME,
  frame,
  FrameReader,
  parseBrokerFrame,
  parseClientAnswer,
  parseClientRequest,
  restartDelayMs,
  userPipeName,
  USER_PIPE_MAX_BODY,
} from '../../agent/local/windows/user-pipe.js';
import { decideApply, type ApplyDevice } from '../../agent/usb/apply.js';
import { sameAccount } from '../../console/usb/applications-store.js';
import { unlockSocketPath } from '../../agent/local-api.js';

const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex');
const SID = 'S-1-5-21-3623811015-3361044348-30300820-1013';
const q = (head: string, body = '{"method":"POST","path":"/usb/apply","body":{}}') => Buffer.from(`${head}\n${body}`, 'utf8');

describe('parseBrokerFrame', () => {
  it('a well-formed request: the identity comes from the header line only', () => {
    const f = parseBrokerFrame(q(`Q 17 4242 1 ${SID} ${hex('PC-KOSEKI-07\\yamada')}`));
    expect(f).toMatchObject({ kind: 'request', id: 17, peer: { uid: null, pid: 4242, session: 1, sid: SID, user: 'PC-KOSEKI-07\\yamada' } });
    expect(f?.kind === 'request' && f.body.toString()).toBe('{"method":"POST","path":"/usb/apply","body":{}}');
  });

  it('ready', () => {
    expect(parseBrokerFrame(Buffer.from('R 308\n'))).toEqual({ kind: 'ready', pid: 308 });
    expect(parseBrokerFrame(Buffer.from('R 308\nextra'))).toBeNull();
  });

  const unknown = { sid: null, user: null };
  it.each([
    ['no SID (token unavailable)', `Q 1 2 3 - ${hex('VM\\root')}`, unknown],
    ['no account', `Q 1 2 3 ${SID} -`, unknown],
    ['NUL in the account', `Q 1 2 3 ${SID} ${hex('VM\\ro\u0000ot')}`, unknown],
    ['newline in the account', `Q 1 2 3 ${SID} ${hex('VM\\ro\not')}`, unknown],
    ['bidi override in the account', `Q 1 2 3 ${SID} ${hex('VM\\\u202eotor')}`, unknown],
    ['two backslashes', `Q 1 2 3 ${SID} ${hex('A\\B\\C')}`, unknown],
    ['empty domain', `Q 1 2 3 ${SID} ${hex('\\root')}`, unknown],
    ['invalid UTF-8', `Q 1 2 3 ${SID} c328`, unknown],
    ['300-character account', `Q 1 2 3 ${SID} ${hex('D\\' + 'x'.repeat(298))}`, unknown],
  ])('%s → a request from nobody (refused by the decision)', (_, head, peer) => {
    const f = parseBrokerFrame(q(head));
    expect(f?.kind).toBe('request');
    expect(f?.kind === 'request' && f.peer).toMatchObject(peer);
  });

  it.each([
    ['a SID string 10 kB long', `Q 1 2 3 S-1-5${'-21'.repeat(3400)} ${hex('VM\\root')}`],
    ['a SID with letters', `Q 1 2 3 S-1-5-21-abc ${hex('VM\\root')}`],
    ['a 2^53 id', `Q ${2 ** 53} 2 3 ${SID} ${hex('VM\\root')}`],
    ['id 0', `Q 0 2 3 ${SID} ${hex('VM\\root')}`],
    ['a pid above 32 bits', `Q 1 99999999999 3 ${SID} ${hex('VM\\root')}`],
    ['upper-case hex', `Q 1 2 3 ${SID} ${hex('VM\\root').toUpperCase()}`],
    ['an extra field', `Q 1 2 3 ${SID} ${hex('VM\\root')} admin`],
    ['an unknown kind', `X 1 2 3 ${SID} ${hex('VM\\root')}`],
    ['a CR before the newline', `Q 1 2 3 ${SID} ${hex('VM\\root')}\r`],
  ])('%s → no frame', (_, head) => {
    expect(parseBrokerFrame(q(head))).toBeNull();
  });

  it('no newline in the first 1600 bytes, or a body above 16 KiB → no frame', () => {
    expect(parseBrokerFrame(Buffer.alloc(5000, 0x41))).toBeNull();
    expect(parseBrokerFrame(q(`Q 1 2 3 ${SID} ${hex('VM\\root')}`, 'x'.repeat(USER_PIPE_MAX_BODY + 1)))).toBeNull();
  });

  it("the client's bytes cannot add a header: a forged identity line in the body stays body", () => {
    const forged = `Q 9 1 0 S-1-5-18 ${hex('NT AUTHORITY\\SYSTEM')}\n`;
    const f = parseBrokerFrame(q(`Q 1 2 3 ${SID} ${hex('VM\\alice')}`, forged));
    expect(f?.kind === 'request' && f.peer.user).toBe('VM\\alice');
    expect(f?.kind === 'request' && f.body.toString()).toBe(forged);
  });

  it('pid 0 and session 0xffffffff mean unknown', () => {
    const f = parseBrokerFrame(q(`Q 1 0 4294967295 ${SID} ${hex('VM\\root')}`));
    expect(f?.kind === 'request' && f.peer).toMatchObject({ pid: null, session: null, sid: SID });
  });
});

describe('accountOf', () => {
  it.each([
    [hex('VM\\root'), 'VM\\root'],
    [hex('root'), 'root'],
    [hex('市役所\\山田'), '市役所\\山田'],
    ['-', null],
    ['abc', null],
    [hex(' \\x'), null],
    [hex('<script>\\x'), '<script>\\x'], // text: rendered by safeText/escaping where shown, never trusted as markup
  ])('%s → %s', (h, want) => expect(accountOf(h)).toBe(want));
});

describe('FrameReader', () => {
  it('frames split anywhere are reassembled; several in one chunk are all returned', () => {
    const a = frame(Buffer.from('one'));
    const b = frame(Buffer.from('two'));
    const all = Buffer.concat([a, b]);
    for (let cut = 0; cut <= all.length; cut++) {
      const r = new FrameReader(100);
      const got = [...r.push(all.subarray(0, cut)), ...r.push(all.subarray(cut))].map(String);
      expect(got).toEqual(['one', 'two']);
      expect(r.pending).toBe(0);
    }
  });

  it('a length above the bound (10 MB, 2^32-1) breaks the reader for good', () => {
    for (const n of [10_000_000, 0xffff_ffff, BROKER_MAX_FRAME + 1]) {
      const r = new FrameReader(BROKER_MAX_FRAME);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(n);
      expect(r.push(Buffer.concat([len, Buffer.alloc(64)]))).toEqual([]);
      expect(r.broken).toBe(true);
      expect(r.push(frame(Buffer.from('late')))).toEqual([]);
    }
  });

  it('an empty frame is a frame (and refused later as a request)', () => {
    expect(new FrameReader(10).push(frame(Buffer.alloc(0)))).toHaveLength(1);
    expect(parseClientRequest(Buffer.alloc(0))).toBeNull();
  });
});

describe('client request / answer', () => {
  it.each([
    ['{"method":"POST","path":"/usb/apply","body":{"ref":"ABCDEF"}}', { method: 'POST', path: '/usb/apply', body: { ref: 'ABCDEF' } }],
    ['{"method":"GET","path":"/status"}', { method: 'GET', path: '/status', body: null }],
    ['{"method":"DELETE","path":"/usb/apply"}', null],
    ['{"method":"POST","path":"/../../etc"}', null],
    ['{"method":"POST","path":"/usb/apply?x=1"}', null],
    ['[1,2]', null],
    ['GET / HTTP/1.1\r\n\r\n', null],
    ['\u0000\u0000', null],
  ])('%s', (text, want) => expect(parseClientRequest(Buffer.from(text))).toEqual(want));

  it('invalid UTF-8 is refused', () => expect(parseClientRequest(Buffer.from([0x7b, 0xc3, 0x28, 0x7d]))).toBeNull());

  it('an answer too large for the broker becomes a small 500', () => {
    const f = answerFrame(0x12345, { status: 202, body: 'x'.repeat(USER_PIPE_MAX_BODY) });
    expect(f.readUInt32LE(4)).toBe(0x12345);
    expect(parseClientAnswer(f.subarray(8))).toEqual({ status: 500, body: { error: 'answer_too_large' } });
    expect(parseClientAnswer(Buffer.from('{"status":"202"}'))).toBeNull();
  });
});

describe('names and backoff', () => {
  it.each([
    ['\\\\.\\pipe\\sekimori-agent', '\\\\.\\pipe\\sekimori-user'],
    ['\\\\.\\pipe\\sekimori-agent-0123456789abcdef', '\\\\.\\pipe\\sekimori-user-0123456789abcdef'],
  ])('%s → %s (also as the apply command finds it)', (agent, user) => {
    expect(userPipeName(agent)).toBe(user);
    expect(unlockSocketPath(agent, { SEKIMORI_UNLOCK_SOCKET: '/tmp/elsewhere.sock' })).toBe(user);
  });

  it('restart delay doubles from 1 s and stops at 60 s, also for absurd counts', () => {
    expect([0, 1, 2, 5, 6, 7, 1000, 2 ** 53, -5].map(restartDelayMs)).toEqual([1000, 2000, 4000, 32_000, 60_000, 60_000, 60_000, 60_000, 1000]);
  });
});

describe('decideApply with a Windows peer', () => {
  const device: ApplyDevice = { vendorId: '0781', productId: '5567', serialHex: '41', descriptorHash: '', serial: 'A', manufacturer: 'SanDisk', product: 'Ultra', port: 'USB\\VID_0781&PID_5567\\A' };
  const lookup = (ref: string) => (ref === 'ABC234' ? device : undefined);
  const body = { ref: 'ABC234', reason: '業務' };
  const peerOf = (head: string) => {
    const f = parseBrokerFrame(q(head));
    if (f?.kind !== 'request') throw new Error('no request');
    return f.peer;
  };
  it.each([
    ['a known account', `Q 1 2 3 ${SID} ${hex('PC01\\yamada')}`, body, { ok: true, user: 'PC01\\yamada' }],
    ['NUL in the account', `Q 1 2 3 ${SID} ${hex('PC01\\yama\u0000da')}`, body, { ok: false, reason: 'no_user', status: 403 }],
    ['no SID', `Q 1 2 3 - ${hex('PC01\\yamada')}`, body, { ok: false, reason: 'no_user' }],
    ["another terminal's 申請番号", `Q 1 2 3 ${SID} ${hex('PC01\\yamada')}`, { ref: 'ZZZ999', reason: 'x' }, { ok: false, reason: 'unknown_ref', status: 404 }],
    ['a 2^53 period', `Q 1 2 3 ${SID} ${hex('PC01\\yamada')}`, { ...body, hours: 2 ** 53 }, { ok: false, reason: 'invalid' }],
  ])('%s', (_, head, b, want) => {
    expect(decideApply({ peer: peerOf(head), body: b, lookup, recent: 0, pending: 0 })).toMatchObject(want);
  });

  it('a uid-less peer without a SID (Windows before this broker) stays refused', () => {
    expect(decideApply({ peer: { uid: null, pid: 1, user: 'PC01\\yamada' }, body, lookup, recent: 0, pending: 0 })).toMatchObject({ ok: false, reason: 'no_user' });
  });
});

describe('sameAccount (the approver is never the applicant)', () => {
  it.each([
    ['PC01\\yamada', 'yamada', true],
    ['PC01\\Yamada', 'YAMADA', true],
    ['PC01\\yamada', 'PC01\\yamada', true],
    ['PC01\\yamada', 'OTHER\\yamada', true], // a namesake elsewhere: refused (another approver decides)
    ['yamada', 'yamada', true],
    ['PC01\\yamada', 'kacho', false],
    ['PC01\\yamada', 'PC01', false],
    ['nobody', 'nobody2', false],
    ['PC01\\', '', false],
  ])('%s vs %s → %s', (staff, actor, want) => expect(sameAccount(staff, actor)).toBe(want));
});
