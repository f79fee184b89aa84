/**
 * The notice as a member of staff sees it: a REAL notification daemon (Debian dunst, markup on —
 * its default) on a session bus of an ordinary user, drawing on Xvfb, given the notice by the
 * agent's own Linux delivery (gdbus run as that user). The hostile product string must show as
 * text, not as markup. Screenshots: test-output/screenshots/notice-*.png (copied to docs/screenshots/).
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LinuxNoticeDelivery } from '../../../agent/notify/linux/delivery.js';
import { noticeText, type Notice } from '../../../protocol/notice.js';
import { ROOT, tempDir, waitFor } from '../../integration/harness.js';
import { isRoot, requireTools } from '../tools.js';
import { NOBODY, startSessionBus, startUntil } from './session.js';
import { drawnPixels, encodePng, parseXwd } from './xwd-png.js';

const tools = requireTools('notify screenshot (Xvfb + dunst)', ['Xvfb', 'dunst', 'dunstctl', 'xwd', 'dbus-daemon', 'gdbus'], 'apt-get install xvfb dunst x11-apps dbus-daemon libglib2.0-bin fonts-noto-cjk', {
  missing: isRoot() ? [] : ['root (the session runs as another user)'],
});
const OUT = join(ROOT, 'test-output/screenshots');

const DUNSTRC = `
[global]
    font = Noto Sans CJK JP 12
    width = 690
    height = 300
    origin = top-left
    offset = 10x10
    frame_width = 2
    padding = 12
    horizontal_padding = 14
    markup = full
    format = "<b>%s</b>\\n%b"
    icon_position = off
    separator_height = 2
[urgency_low]
    background = "#ffffff"
    foreground = "#202124"
    timeout = 0
[urgency_normal]
    background = "#ffffff"
    foreground = "#202124"
    frame_color = "#1a73e8"
    timeout = 0
[urgency_critical]
    background = "#fff8f7"
    foreground = "#202124"
    frame_color = "#c5221f"
    timeout = 0
`;

describe.skipIf(!tools.ok)('notice screenshot: dunst on Xvfb', () => {
  let dir = '';
  let address = '';
  let display = '';
  const procs: ChildProcess[] = [];
  const asUser = (args: string[]) =>
    spawnSync(args[0]!, args.slice(1), { uid: NOBODY, gid: NOBODY, env: { PATH: '/usr/bin:/bin', HOME: dir, DISPLAY: display, DBUS_SESSION_BUS_ADDRESS: address }, encoding: 'utf8', timeout: 20_000 });

  beforeAll(async () => {
    dir = tempDir('notify-shot');
    chownSync(dir, NOBODY, NOBODY);
    const bus = await startSessionBus(dir);
    procs.push(bus.proc);
    address = bus.address;
    const x = await startUntil('Xvfb', ['-displayfd', '1', '-screen', '0', '720x220x24', '-nolisten', 'tcp', '-ac'], { env: { PATH: '/usr/bin:/bin' } }, /^\d+$/);
    procs.push(x.proc);
    display = `:${x.line.trim()}`;
    writeFileSync(join(dir, 'dunstrc'), DUNSTRC);
    const d = await startUntil('sh', ['-c', 'echo started; exec dunst -config "$1"', 'sh', join(dir, 'dunstrc')], { uid: NOBODY, gid: NOBODY, env: { PATH: '/usr/bin:/bin', HOME: dir, DISPLAY: display, DBUS_SESSION_BUS_ADDRESS: address } }, /^started$/);
    procs.push(d.proc);
    // dunst owns the name once it answers on the bus.
    await waitFor('dunst on the session bus', () => /dunst/.test(asUser(['gdbus', 'call', '--session', '--dest', 'org.freedesktop.Notifications', '--object-path', '/org/freedesktop/Notifications', '--method', 'org.freedesktop.Notifications.GetServerInformation']).stdout), 30_000, 200);
    mkdirSync(OUT, { recursive: true });
  }, 120_000);

  afterAll(() => {
    for (const p of procs.reverse()) p.kill('SIGKILL');
  });

  const notice: Notice = { kind: 'usb_blocked', user: '', subject: 'SanDisk <b>Ultra</b> <i>&amp;</i>\u202egpj.exe', ref: 'K7Q2MX' };

  for (const lang of ['ja', 'en'] as const) {
    it(`usb_blocked (${lang}): shown by dunst, markup inert`, async () => {
      asUser(['dunstctl', 'close-all']);
      await waitFor('no notice displayed', () => asUser(['dunstctl', 'count', 'displayed']).stdout.trim() === '0', 20_000, 100);
      const delivery = new LinuxNoticeDelivery({ env: {} });
      await delivery.deliver({ user: 'nobody', uid: NOBODY, gid: NOBODY, address, lang }, noticeText(notice, lang), notice);
      await waitFor('dunst displays it', () => asUser(['dunstctl', 'count', 'displayed']).stdout.trim() === '1', 20_000, 100);
      // Drawn once the window is mapped and painted: poll the screen until it has content.
      const img = await waitFor(
        'notice drawn on the screen',
        () => {
          const r = spawnSync('xwd', ['-root', '-silent', '-display', display], { maxBuffer: 64 * 1024 * 1024, timeout: 20_000 });
          if (r.status !== 0) return null;
          const im = parseXwd(r.stdout);
          return drawnPixels(im) > 5_000 ? im : null;
        },
        20_000,
        200,
      );
      const file = join(OUT, `notice-usb-blocked-${lang}.png`);
      writeFileSync(file, encodePng(img));
      // What dunst was given (its history keeps the body it rendered): full-width marks, no tags.
      const hist = asUser(['dunstctl', 'history']).stdout;
      expect(hist).not.toContain('<b>Ultra');
      expect(img.width).toBe(720);
    }, 90_000);
  }
});
