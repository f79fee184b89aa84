/**
 * The Windows notice helper (agent/notify/windows/notice.c → dist/windows/sekimori-notice.exe)
 * under wine 10: the real .exe runs, takes the arguments the agent builds (a hostile Japanese
 * notice as UTF-16LE hex), refuses malformed ones (exit 64) and ends at once (bWait FALSE).
 * NOT shown here: the message box itself — wine's WTSSendMessageW is a stub that fails (exit 3);
 * what Windows shows on the console session's desktop cannot be verified on these machines.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { noticeHelperArgs, NOTICE_EXIT } from '../../../agent/notify/windows/delivery.js';
import { noticeText } from '../../../protocol/notice.js';
import { requireWine, ROOT, runWine, winPath } from '../wine/wine.js';

const EXE = join(ROOT, 'dist/windows/sekimori-notice.exe');
const check = requireWine([EXE]);

describe.skipIf(!check.ok)('sekimori-notice.exe under wine', () => {
  const run = (args: string[]) => runWine([winPath(EXE), ...args], { timeoutMs: 90_000 });

  it('takes the agent\'s arguments for a hostile Japanese notice and returns without waiting', async () => {
    const text = noticeText({ kind: 'usb_blocked', user: '', subject: '<b>USB\u202eDISK</b>\n' + 'あ'.repeat(5000), ref: 'K7Q2MX' }, 'ja');
    const r = await run(noticeHelperArgs(text));
    expect(r.timedOut).toBe(false);
    // Real Windows: 0 (sent). wine: its WTSSendMessageW stub fails → 3, said on stderr.
    expect([NOTICE_EXIT.sent, NOTICE_EXIT.failed]).toContain(r.code);
    if (r.code === NOTICE_EXIT.failed) expect(r.stderr).toContain('WTSSendMessageW failed');
  }, 120_000);

  const bad: [string, string[]][] = [
    ['no arguments', []],
    ['timeout 0', ['0', '4100', '4100']],
    ['timeout huge', ['9007199254740993', '4100', '4100']],
    ['not hex', ['5', 'zz00', '4100']],
    ['odd length', ['5', '410', '4100']],
    ['too long (4097 characters)', ['5', '4100', '4100'.repeat(4097)]],
  ];
  for (const [name, args] of bad) {
    it(`refuses ${name} (exit 64)`, async () => {
      const r = await run(args);
      expect(r.code).toBe(NOTICE_EXIT.usage);
    }, 120_000);
  }
});
