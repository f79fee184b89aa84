/**
 * RFC 5424 formatting of stored events for the SIEM (issue 17): header fields, §6.3.3 PARAM-VALUE
 * escaping, SD-NAME rules, octet-counting frame, and hostile input (`]` `"` `\` in device names,
 * control characters, 10 kB values, lone surrogates, host names with spaces or Japanese, year 9999).
 * Every message is read back with the parser and must give the stored values exactly.
 */
import { describe, expect, it } from 'vitest';
import {
  escapeParamValue,
  flattenData,
  formatEvent,
  frame,
  parseMessage,
  parseStructuredData,
  printUsAscii,
  rfc5424Timestamp,
  sdName,
  SD_ID,
  type ForwardEvent,
} from '../../console/siem/format.js';

const H = 'a'.repeat(64);
function ev(over: Partial<ForwardEvent> = {}): ForwardEvent {
  return {
    rid: 1,
    id: '6f1c2a3e-0000-4000-8000-000000000001',
    agentId: '0b6c0d1e-aaaa-4bbb-8ccc-000000000002',
    seq: 7,
    ts: '2026-11-30T09:00:00.123Z',
    type: 'usb.blocked',
    severity: 'warning',
    user: 'yamada',
    data: {
      kind: 'usb', mode: 'enforce', port: '1-2', busnum: 1, devnum: 5, vendorId: '0781', productId: '5581', bcdDevice: '0100', deviceClass: '00', interfaceClasses: ['08'],
      interfaces: [{ number: 0, classes: ['08/06/50'], allow: false, rule: 'class:08' }], manufacturer: 'SanDisk', product: 'Ultra', serial: '4C530001',
      serialHex: '3443353330303031', descriptorHash: 'a'.repeat(64), rule: 'class:08', partial: false, readonly: false, exceptionId: null,
    },
    prevHash: H,
    hash: 'b'.repeat(64),
    terminalId: '0b6c0d1e-aaaa-4bbb-8ccc-000000000002',
    chain: 'ok',
    receivedAt: '2026-11-30T09:00:01.000Z',
    agentTs: null,
    hostname: 'PC-KOSEKI-07',
    ...over,
  };
}
const opts = { facility: 10, consoleHostname: 'console-host' };
const params = (m: string) => {
  const p = parseMessage(m);
  expect(p).not.toBeNull();
  expect(p!.sd).toHaveLength(1);
  expect(p!.sd[0]!.id).toBe(SD_ID);
  return new Map(p!.sd[0]!.params);
};

describe('PARAM-VALUE escaping (RFC 5424 §6.3.3)', () => {
  it.each([
    ['plain', 'plain'],
    ['a"b', 'a\\"b'],
    ['a\\b', 'a\\\\b'],
    ['a]b', 'a\\]b'],
    ['[x]', '[x\\]'], // only ']' is escaped, '[' is not
    ['\\"]', '\\\\\\"\\]'],
    ['日本語', '日本語'],
    ['=', '='],
  ])('%j → %j', (raw, escaped) => {
    expect(escapeParamValue(raw)).toBe(escaped);
    expect(parseStructuredData(`[x@1 k="${escaped}"]`)).toEqual([{ id: 'x@1', params: [['k', raw]] }]);
  });
  it('a backslash before another character stays a backslash (§6.3.3)', () => {
    expect(parseStructuredData('[x@1 k="a\\nb"]')).toEqual([{ id: 'x@1', params: [['k', 'a\\nb']] }]);
  });
});

describe('header fields', () => {
  it.each([
    ['2026-11-30T09:00:00.123Z', '2026-11-30T09:00:00.123Z'],
    ['9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59.999Z'], // year 9999 is a valid RFC 3339 date
    ['2026-11-30T09:00:00Z', '2026-11-30T09:00:00Z'],
    ['2026-11-30T09:00:00.1234567Z', '-'], // more than 6 fraction digits
    ['+010000-01-01T00:00:00.000Z', '-'], // Date#toISOString past 9999
    ['2026-13-01T00:00:00.000Z', '-'],
    ['2026-11-30 09:00:00', '-'],
    ['', '-'],
  ])('TIMESTAMP %j → %j', (ts, want) => expect(rfc5424Timestamp(ts)).toBe(want));

  it.each([
    ['PC-KOSEKI-07', 255, 'PC-KOSEKI-07'],
    ['PC KOSEKI 07', 255, 'PC_KOSEKI_07'],
    ['戸籍端末', 255, '____'],
    ['a\nb\u0000c', 255, 'a_b_c'],
    ['', 255, '-'],
    ['x'.repeat(1000), 255, 'x'.repeat(255)],
  ])('PRINTUSASCII %j', (s, max, want) => expect(printUsAscii(s, max)).toBe(want));

  it.each([
    ['data.vendorId', 'data.vendorId'],
    ['data.a b', 'data.a_b'],
    ['data.a=b"c]d', 'data.a_b_c_d'],
    ['data.' + 'k'.repeat(100), ('data.' + 'k'.repeat(100)).slice(0, 32)],
    ['data.名前', 'data.__'],
  ])('SD-NAME %j → %j', (s, want) => {
    const n = sdName(s);
    expect(n).toBe(want);
    expect(n.length).toBeLessThanOrEqual(32);
    expect(n).toMatch(/^[!#-<>-\\^-~]{1,32}$/);
  });

  it('PRI = facility × 8 + severity; APP-NAME, PROCID (agent id), MSGID (type), HOSTNAME (terminal)', () => {
    const cases: [string, number][] = [
      ['critical', 10 * 8 + 2],
      ['warning', 10 * 8 + 4],
      ['notice', 10 * 8 + 5],
      ['info', 10 * 8 + 6],
    ];
    for (const [severity, pri] of cases) {
      const p = parseMessage(formatEvent(ev({ severity }), opts))!;
      expect(p.pri).toBe(pri);
      expect(p.appName).toBe('sekimori');
      expect(p.procid).toBe(ev().agentId);
      expect(p.msgid).toBe('usb.blocked');
      expect(p.hostname).toBe('PC-KOSEKI-07');
      expect(p.timestamp).toBe('2026-11-30T09:00:00.123Z');
    }
    expect(parseMessage(formatEvent(ev(), { facility: 16, consoleHostname: null }))!.pri).toBe(16 * 8 + 4);
  });

  it("the console's own events: console host name, PROCID NILVALUE; no known host name → NILVALUE", () => {
    const c = parseMessage(formatEvent(ev({ agentId: 'console', terminalId: 'console', hostname: null, type: 'admin.login', data: { from: '127.0.0.1', role: 'admin' } }), opts))!;
    expect(c.hostname).toBe('console-host');
    expect(c.procid).toBe('-');
    const u = parseMessage(formatEvent(ev({ hostname: null }), opts))!;
    expect(u.hostname).toBe('-');
    const none = parseMessage(formatEvent(ev({ agentId: 'console', hostname: null }), { facility: 10, consoleHostname: null }))!;
    expect(none.hostname).toBe('-');
  });

  it('MSGID is cut to 32 characters; the whole type travels in the type param', () => {
    const type = 'admin.software_inventory_exported'; // 33 characters
    const m = formatEvent(ev({ type, agentId: 'console', data: { rows: 1, filter: {} } }), opts);
    expect(parseMessage(m)!.msgid).toBe(type.slice(0, 32));
    expect(params(m).get('type')).toBe(type);
  });

  it('MSG is BOM + the Japanese sentence, intact', () => {
    const p = parseMessage(formatEvent(ev(), opts))!;
    expect(p.msg.startsWith('\uFEFF')).toBe(true);
    expect(p.msg).toContain('端末 PC-KOSEKI-07 で yamada が USBメモリ SanDisk Ultra');
    expect(p.msg).toContain('遮断しました');
  });
});

describe('structured data carries the stored event exactly', () => {
  it('who/what params, in order, then the data fields', () => {
    const m = formatEvent(ev({ agentTs: '2019-01-01T00:00:00.000Z' }), opts);
    const keys = parseMessage(m)!.sd[0]!.params.map(([k]) => k);
    expect(keys.slice(0, 14)).toEqual(['eventId', 'type', 'severity', 'agentId', 'seq', 'ts', 'agentTs', 'receivedAt', 'hash', 'prevHash', 'chain', 'terminalId', 'hostname', 'user']);
    const p = params(m);
    expect(p.get('eventId')).toBe(ev().id);
    expect(p.get('seq')).toBe('7');
    expect(p.get('hash')).toBe('b'.repeat(64));
    expect(p.get('prevHash')).toBe(H);
    expect(p.get('data.interfaceClasses.0')).toBe('08');
    expect(p.get('data.vendorId')).toBe('0781');
  });

  it('no user → no user param', () => {
    expect(params(formatEvent(ev({ user: null }), opts)).has('user')).toBe(false);
  });

  const hostile: [string, unknown][] = [
    ['brackets and quotes in a device name', { product: 'Ultra] [evil@1 x="y"] \\"', manufacturer: '"]\\' }],
    ['control characters', { product: 'a\nb\rc\u0000d\u001be[31m\u007f', path: '\t' }],
    ['a 10 kB value', { product: 'x]'.repeat(5000) }],
    ['lone surrogates', { product: 'a\uD800b\uDC00c' }],
    ['Japanese', { product: 'USBメモリ「総務課」', manufacturer: '株式会社サンプル' }],
    ['nested / arrays / scalars', { a: { b: [1, true, null, 'x'] }, e: [], o: {}, n: 2 ** 53, f: -0.5 }],
    ['keys with spaces, = and ]', { 'a b': '1', 'c=d': '2', 'e]f': '3', '"': '4' }],
  ];
  it.each(hostile)('%s', (_name, data) => {
    const e = ev({ data, hostname: 'PC KOSEKI "07"]' });
    const m = formatEvent(e, opts);
    const p = parseMessage(m)!;
    expect(p).not.toBeNull();
    expect(p.hostname).toBe('PC_KOSEKI_"07"]');
    // Exactly one SD element: nothing in a value could open a second one.
    expect(p.sd).toHaveLength(1);
    const got = p.sd[0]!.params.filter(([k]) => k.startsWith('data'));
    const want = flattenData(data).map(([k, v]) => [k, v.toWellFormed()]);
    expect(got).toEqual(want);
    expect(p.sd[0]!.params.find(([k]) => k === 'hostname')![1]).toBe('PC KOSEKI "07"]');
    // The message is well-formed UTF-8 and its frame counts octets.
    const f = frame(m);
    const sp = f.indexOf(0x20);
    expect(Number(f.subarray(0, sp).toString())).toBe(f.length - sp - 1);
    expect(new TextDecoder('utf-8', { fatal: true }).decode(f.subarray(sp + 1))).toBe(m.toWellFormed());
  });

  it('lone surrogates become U+FFFD, not invalid UTF-8', () => {
    const m = formatEvent(ev({ data: { product: 'a\uD800b' } }), opts);
    expect(params(m).get('data.product')).toBe('a\uFFFDb');
  });

  it('numbers as JSON text: 2^53, negative, null, booleans', () => {
    expect(flattenData({ n: 2 ** 53, m: -1.5, z: null, t: true })).toEqual([
      ['data.n', '9007199254740992'],
      ['data.m', '-1.5'],
      ['data.z', 'null'],
      ['data.t', 'true'],
    ]);
  });

  it('data that is not an object (a stored text) is one param', () => {
    expect(flattenData('not json')).toEqual([['data', 'not json']]);
  });

  it('a huge number of fields is bounded', () => {
    const big = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, i]));
    expect(flattenData(big)).toHaveLength(4096);
  });

  it('frame: octet count of a Japanese message', () => {
    const f = frame('日本');
    expect(f.toString()).toBe('6 日本');
  });
});
