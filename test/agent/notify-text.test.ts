/**
 * The notice's text (protocol/notice.ts): Japanese and English for every kind, the apply command
 * named with the 申請番号, and attacker-controlled subjects/reasons made inert and bounded.
 */
import { describe, expect, it } from 'vitest';
import { NOTICE_KINDS, NOTICE_REASON_MAX, NOTICE_SUBJECT_MAX, noticeRef, noticeSafe, noticeSettingsErrors, noticeSettingsOf, noticeText, type Notice } from '../../protocol/notice.js';
import { builtinPolicy, policyBodyErrors } from '../../protocol/policy.js';

const base = (over: Partial<Notice> = {}): Notice => ({ kind: 'usb_blocked', user: 'tanaka', subject: 'SanDisk Ultra', ...over });

describe('noticeText: what each kind says', () => {
  const cases: { n: Notice; ja: RegExp[]; en: RegExp[] }[] = [
    {
      n: base({ ref: 'K7Q2MX' }),
      ja: [/遮断しました/, /「SanDisk Ultra」/, /情報持ち出し不可/, /sekimori-agent apply K7Q2MX/],
      en: [/blocked/, /"SanDisk Ultra"/, /no data export/, /sekimori-agent apply K7Q2MX/],
    },
    { n: base(), ja: [/情報持ち出し不可/, /情報システム管理者に連絡/], en: [/contact your IT administrator/] },
    { n: base({ monitor: true, ref: 'AB12CD' }), ja: [/監視モード/, /今回は使用できます/], en: [/Monitor mode/] },
    { n: base({ kind: 'usb_readonly', ref: 'AB12CD' }), ja: [/読み取り専用/, /書き込みはできません/, /apply AB12CD/], en: [/read-only/, /not written/] },
    { n: base({ kind: 'software_stopped', subject: 'evil.sh' }), ja: [/無許可ソフトウェア/, /停止しました/, /「evil\.sh」/], en: [/Unauthorized software stopped/, /allowlist/] },
    { n: base({ kind: 'software_stopped', subject: 'evil.sh', monitor: true }), ja: [/監視モードのため停止していません/], en: [/did not stop it/] },
    { n: base({ kind: 'software_reported', subject: 'x' }), ja: [/検出しました/, /報告されました/], en: [/detected/, /reported/] },
    { n: base({ kind: 'application_sent', ref: 'AB12CD' }), ja: [/申請しました/, /申請番号 AB12CD/], en: [/sent/, /reference AB12CD/] },
    { n: base({ kind: 'application_approved', ref: 'AB12CD', until: '2026-12-01T09:30:00Z' }), ja: [/承認されました/, /まで使用できます/, /2026-12-0[12] /], en: [/approved/, /until 2026-12-0[12] /] },
    { n: base({ kind: 'application_rejected', ref: 'AB12CD', reason: '業務外' }), ja: [/却下されました/, /理由: 業務外/], en: [/rejected/, /Reason: 業務外/] },
  ];
  for (const c of cases) {
    it(`${c.n.kind}${c.n.monitor ? ' (monitor)' : ''}${c.n.ref ? ' with ref' : ''}`, () => {
      const ja = noticeText(c.n, 'ja');
      const en = noticeText(c.n, 'en');
      for (const r of c.ja) expect(ja.summary + '\n' + ja.body).toMatch(r);
      for (const r of c.en) expect(en.summary + '\n' + en.body).toMatch(r);
      expect(en.summary + en.body).not.toMatch(/[\u3040-\u30ff]/); // no kana in English (subjects here are ASCII or 業務外 only)
    });
  }
  it('every kind has a summary and body in both languages', () => {
    for (const kind of NOTICE_KINDS) {
      for (const lang of ['ja', 'en'] as const) {
        const t = noticeText(base({ kind }), lang);
        expect(t.summary.length).toBeGreaterThan(3);
        expect(t.body.length).toBeGreaterThan(10);
      }
    }
  });
});

describe('noticeText: hostile input stays inert and bounded', () => {
  const hostile: [string, string][] = [
    ['markup', '<b>Sandisk</b><a href="http://x/">click</a><img src=x onerror=alert(1)>'],
    ['entity', '&lt;script&gt;&amp;'],
    ['newlines', 'USB\nDISK\r\n2.0\u2028next\u2029para'],
    ['bidi', 'gpj.\u202eexe.txt\u2066x\u2069\u200f'],
    ['zero-width and BOM', 'Sa\u200bnD\u200disk\ufeff'],
    ['controls', 'a\u0000b\u0007c\u001bd[31m\u009be'],
    ['tags', 'a\u{e0041}\u{e0042}b'],
    ['lone surrogate', 'a\ud800b'],
  ];
  for (const [name, subject] of hostile) {
    it(name, () => {
      for (const lang of ['ja', 'en'] as const) {
        const { summary, body } = noticeText(base({ subject, ref: 'AB12CD' }), lang);
        expect(body).not.toMatch(/[<>&]/);
        // eslint-disable-next-line no-control-regex
        expect(body.split('\n')[0]).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200b-\u200f\ufeff]/);
        expect(body.split('\n')).toHaveLength(3); // subject line, advice, command: the subject cannot add lines
        expect(summary).not.toContain(subject);
        expect(body.isWellFormed()).toBe(true);
      }
    });
  }
  it('markup characters become full-width (readable, never a tag)', () => {
    expect(noticeSafe('<b>x</b> & y', 80)).toBe('＜b＞x＜/b＞ ＆ y');
  });
  it('10 kB and 10 MB subjects are cut to the bound', () => {
    for (const size of [10_000, 10_000_000]) {
      const s = noticeSafe('あ'.repeat(size), NOTICE_SUBJECT_MAX);
      expect(Array.from(s)).toHaveLength(NOTICE_SUBJECT_MAX);
      expect(s.endsWith('…')).toBe(true);
      const t = noticeText(base({ subject: 'A'.repeat(size), reason: 'R'.repeat(size), kind: 'application_rejected' }), 'ja');
      expect(t.body.length).toBeLessThan(NOTICE_SUBJECT_MAX + NOTICE_REASON_MAX + 200);
    }
  });
  it('an empty or whitespace subject shows a placeholder', () => {
    expect(noticeText(base({ subject: '\u202e \n ' }), 'ja').body).toContain('「(名称不明)」');
    expect(noticeText(base({ subject: '' }), 'en').body).toContain('"(unnamed)"');
  });
  it('a reference that is not one is never put into the command line', () => {
    for (const ref of ['AB12CD; rm -rf /', '$(id)', 'A'.repeat(17), '', '申請', 'AB CD', '`x`']) {
      const { body } = noticeText(base({ ref }), 'ja');
      expect(body).not.toContain('sekimori-agent apply');
      expect(body).toContain('情報システム管理者');
    }
  });
  it('an until that is no time is left out; year 9999 is shown as it is', () => {
    expect(noticeText(base({ kind: 'application_approved', until: 'tomorrow' }), 'ja').body).not.toContain('まで使用できます');
    expect(noticeText(base({ kind: 'application_approved', until: '9999-12-31T00:00:00Z' }), 'ja').body).toMatch(/9999-12-3[01] \d\d:\d\d まで/);
  });
});

describe('noticeRef', () => {
  it('6 characters of Crockford base32, stable per seed, differs between seeds', () => {
    const a = noticeRef('event-1');
    expect(a).toMatch(/^[0-9A-HJKMNP-TV-Z]{6}$/);
    expect(noticeRef('event-1')).toBe(a);
    expect(noticeRef('event-2')).not.toBe(a);
  });
});

describe('policy option agent.notices', () => {
  it('absent → shown, not in monitor mode; an old policy stays valid', () => {
    const p = builtinPolicy();
    expect(noticeSettingsOf(p.agent)).toEqual({ enabled: true, monitor: false });
    expect(policyBodyErrors(p)).toEqual([]);
  });
  it('set → in force; partial → the rest default', () => {
    expect(noticeSettingsOf({ notices: { monitor: true } })).toEqual({ enabled: true, monitor: true });
    expect(noticeSettingsOf({ notices: { enabled: false } })).toEqual({ enabled: false, monitor: false });
    const p = builtinPolicy();
    expect(policyBodyErrors({ ...p, agent: { ...p.agent, notices: { enabled: true, monitor: true } } })).toEqual([]);
  });
  const bad: [unknown, string][] = [
    [[], 'policy.agent.notices: must be an object'],
    ['yes', 'policy.agent.notices: must be an object'],
    [{ monitor: 'true' }, 'policy.agent.notices.monitor: must be true or false'],
    [{ enabled: 1 }, 'policy.agent.notices.enabled: must be true or false'],
    [{ popup: true }, 'policy.agent.notices.popup: unknown setting'],
  ];
  for (const [v, msg] of bad) {
    it(`rejects ${JSON.stringify(v)}`, () => {
      expect(noticeSettingsErrors(v, 'policy.agent.notices')).toContain(msg);
      const p = builtinPolicy();
      expect(policyBodyErrors({ ...p, agent: { ...p.agent, notices: v } })).toContain(msg);
    });
  }
});
