/**
 * The terminals page's SIEM line (issue 17): state, target, backlog and the last error, escaped —
 * an error text comes from the network (a SIEM's TLS alert, a certificate's subject) and is rendered
 * in HTML; it must not become markup, and it is bounded.
 */
import { describe, expect, it } from 'vitest';
import type { SiemStatus } from '../../console/siem/cli.js';
import { parseTarget } from '../../console/siem/cli.js';
import { renderSiemLine } from '../../console/siem/status-line.js';

const base: SiemStatus = {
  enabled: true, target: '127.0.0.1:6514', name: 'siem.test', facility: 'authpriv', clientCert: true, state: 'forwarding',
  cursor: 10, backlog: 0, forwarded: 10, lastError: null, lastErrorAt: null, lastOkAt: null,
};

describe('SIEM status line', () => {
  it.each<[string, Partial<SiemStatus>, 'ja' | 'en', RegExp]>([
    ['off', { enabled: false }, 'ja', /SIEM転送: 未設定/],
    ['forwarding', {}, 'ja', /SIEM転送: 転送中 — 127\.0\.0\.1:6514 · 未転送 0/],
    ['forwarding (en)', {}, 'en', /SIEM forwarding: forwarding — 127\.0\.0\.1:6514 · backlog 0/],
    ['down with an error', { state: 'down', backlog: 2 ** 53, lastError: 'ECONNREFUSED' }, 'ja', /停止中.*未転送 9007199254740992 · 最後のエラー: ECONNREFUSED/],
  ])('%s', (_n, over, L, re) => {
    expect(renderSiemLine({ ...base, ...over }, L).value).toMatch(re);
  });

  it('hostile error and target text are escaped and bounded', () => {
    const v = renderSiemLine({ ...base, state: 'down', target: '<img src=x onerror=alert(1)>:1', lastError: '<script>alert(1)</script>"\'&' + 'x'.repeat(10_000) }, 'en').value;
    expect(v).not.toContain('<script>');
    expect(v).not.toContain('<img');
    expect(v).toContain('&lt;script&gt;');
    expect(v.length).toBeLessThan(1000);
  });
});

describe('--target', () => {
  it.each<[string, { host: string; port: number } | null]>([
    ['siem.example.lg.jp:6514', { host: 'siem.example.lg.jp', port: 6514 }],
    ['127.0.0.1:6514', { host: '127.0.0.1', port: 6514 }],
    ['[::1]:6514', { host: '::1', port: 6514 }],
    ['siem:0', null],
    ['siem:65536', null],
    ['siem:99999', null],
    ['siem', null],
    ['a b:1', null],
    [':6514', null],
    ['siem:6514\n', null],
    ['x'.repeat(300) + ':1', null],
  ])('%j', (s, want) => {
    const r = parseTarget(s);
    if (want === null) expect(typeof r).toBe('string');
    else expect(r).toEqual(want);
  });
});
