/**
 * The platform parts of notices that need no bus: GVariant quoting of hostile text for gdbus,
 * which bus addresses are used, the session's language, finding logged-in users' buses from
 * utmp + passwd + /run/user + /proc (fake trees), and the Windows helper's arguments.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptBusAddress, gdbusNotifyArgs, gvariantString, langOfEnv, LinuxNoticeDelivery, parseEnviron, passwdEntry } from '../../agent/notify/linux/delivery.js';
import { noticeHelperArgs, utf16Hex, WindowsNoticeDelivery } from '../../agent/notify/windows/delivery.js';

describe('gvariantString: every string is one printable-ASCII GVariant literal', () => {
  const cases: [string, string][] = [
    ['plain', "'plain'"],
    ["it's", "'it\\'s'"],
    ['back\\slash', "'back\\\\slash'"],
    ['改行\n', "'\\u6539\\u884c\\u000a'"],
    ['😀', "'\\U0001f600'"],
    ['\u202e', "'\\u202e'"],
    ["' , 'x' ; uint32 5", "'\\' , \\'x\\' ; uint32 5'"],
  ];
  for (const [input, want] of cases) it(JSON.stringify(input), () => expect(gvariantString(input)).toBe(want));
  it('a lone surrogate is replaced, never emitted', () => {
    expect(gvariantString('a\ud800')).toBe("'a\\ufffd'");
  });
  it('10 kB of hostile text stays one argument of ASCII', () => {
    const s = gvariantString("<b>'\"\\\n".repeat(2000));
    expect(s).toMatch(/^'[\x20-\x7e]*'$/);
  });
  it('the Notify call is typed (no introspection needed) and has the text as two arguments', () => {
    const a = gdbusNotifyArgs({ summary: 'S', body: 'B' }, 2);
    expect(a.slice(-8)).toEqual(["'Sekimori'", 'uint32 0', "'dialog-warning'", "'S'", "'B'", '@as []', "@a{sv} {'urgency': <byte 2>}", 'int32 -1']);
    expect(a).toContain('org.freedesktop.Notifications.Notify');
  });
});

describe('acceptBusAddress', () => {
  const table: [string | undefined, boolean][] = [
    ['unix:path=/run/user/1000/bus', true],
    ['unix:path=/tmp/dbus-x,guid=0123456789abcdef0123456789abcdef', true],
    ['unix:abstract=/tmp/dbus-AbC', true],
    ['tcp:host=10.0.0.1,port=1234', false],
    ['unixexec:path=/bin/sh,argv1=-c', false],
    ['unix:path=/a;tcp:host=x', false],
    ['unix:path=/a,noncefile=/x', false],
    ['', false],
    [undefined, false],
    ['unix:path=' + 'a'.repeat(600), false],
  ];
  for (const [a, ok] of table) it(`${String(a).slice(0, 40)} → ${ok}`, () => expect(acceptBusAddress(a) !== null).toBe(ok));
});

describe('langOfEnv', () => {
  const table: [Record<string, string>, 'ja' | 'en' | null][] = [
    [{ LANG: 'ja_JP.UTF-8' }, 'ja'],
    [{ LANG: 'en_US.UTF-8' }, 'en'],
    [{ LANG: 'ja_JP.UTF-8', LC_MESSAGES: 'en_GB.UTF-8' }, 'en'],
    [{ LANG: 'en_US.UTF-8', LC_ALL: 'ja_JP.UTF-8' }, 'ja'],
    [{ LANG: 'C.UTF-8' }, null],
    [{ LC_ALL: 'C', LANG: 'en_US.UTF-8' }, 'en'],
    [{ LANG: 'de_DE.UTF-8' }, null],
    [{ LANG: 'english' }, null],
    [{}, null],
  ];
  for (const [env, want] of table) it(`${JSON.stringify(env)} → ${want}`, () => expect(langOfEnv(env)).toBe(want));
});

describe('parseEnviron / passwdEntry', () => {
  it('environ: NUL-separated, = in values kept, junk ignored', () => {
    expect(parseEnviron(Buffer.from('A=1\0B=x=y\0junk\0=z\0'))).toEqual({ A: '1', B: 'x=y' });
  });
  it('passwd: the account, or null for absent/malformed/huge ids', () => {
    const text = 'root:x:0:0:root:/root:/bin/bash\ntanaka:x:1000:1000:,,,:/home/tanaka:/bin/bash\nbad:x:abc:1:::\nbig:x:9007199254740993:1:::/sh\n';
    expect(passwdEntry(text, 'tanaka')).toEqual({ user: 'tanaka', uid: 1000, gid: 1000, home: '/home/tanaka' });
    expect(passwdEntry(text, 'nobody')).toBeNull();
    expect(passwdEntry(text, 'bad')).toBeNull();
    expect(passwdEntry(text, 'big')).toBeNull();
  });
});

describe('LinuxNoticeDelivery.sessions (fake utmp, passwd, /run/user, /proc)', () => {
  let dir = '';
  let sock: Server;
  const utmpRec = (user: string, line: string) => {
    const b = Buffer.alloc(384);
    b.writeInt16LE(7, 0);
    b.write(line, 8);
    b.write(user, 44);
    b.writeInt32LE(100, 340);
    return b;
  };
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sekimori-notify-'));
    writeFileSync(join(dir, 'utmp'), Buffer.concat([utmpRec('tanaka', 'tty2'), utmpRec('suzuki', 'pts/0'), utmpRec('root', 'tty1'), utmpRec('ghost', 'pts/1')]));
    writeFileSync(join(dir, 'passwd'), 'root:x:0:0::/root:/bin/sh\ntanaka:x:1000:1000::/home/tanaka:/bin/sh\nsuzuki:x:1001:1001::/home/suzuki:/bin/sh\n');
    // tanaka has systemd's user bus; suzuki only an address in a process environment.
    mkdirSync(join(dir, 'run/1000'), { recursive: true });
    sock = createServer();
    await new Promise<void>((r) => sock.listen(join(dir, 'run/1000/bus'), r));
    mkdirSync(join(dir, 'proc'));
  });
  afterAll(() => {
    sock.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const opts = () => ({ utmpPaths: [join(dir, 'utmp')], passwdPath: join(dir, 'passwd'), runUserRoot: join(dir, 'run'), procRoot: join(dir, 'proc'), env: {} });

  it('a user with /run/user/UID/bus; a user without a bus is skipped; root and unknown accounts never', () => {
    const s = new LinuxNoticeDelivery(opts()).sessions();
    expect(s).toEqual([{ user: 'tanaka', uid: 1000, gid: 1000, address: `unix:path=${join(dir, 'run/1000/bus')}`, lang: expect.stringMatching(/^(ja|en)$/) }]);
  });
  it('nobody logged in (no utmp) → no sessions, no throw', () => {
    expect(new LinuxNoticeDelivery({ ...opts(), utmpPaths: [join(dir, 'missing')] }).sessions()).toEqual([]);
  });
  it('the test override: one bus for whoever the notice is for; a refused address gives none', () => {
    expect(new LinuxNoticeDelivery({ env: { SEKIMORI_NOTIFY_BUS: 'unix:path=/tmp/b', SEKIMORI_NOTIFY_UID: '65534', SEKIMORI_NOTIFY_GID: '65534' } }).sessions()).toEqual([
      { user: '', uid: 65534, gid: 65534, address: 'unix:path=/tmp/b', lang: expect.stringMatching(/^(ja|en)$/) },
    ]);
    expect(new LinuxNoticeDelivery({ env: { SEKIMORI_NOTIFY_BUS: 'tcp:host=x' } }).sessions()).toEqual([]);
    expect(new LinuxNoticeDelivery({ env: { SEKIMORI_NOTIFY_BUS: 'unix:path=/b', SEKIMORI_NOTIFY_UID: '-1' } }).sessions()).toEqual([]);
  });
  it('a missing gdbus is a bounded failure naming the package', async () => {
    const d = new LinuxNoticeDelivery({ gdbus: '/nonexistent/gdbus' });
    await expect(d.deliver({ user: 'x', uid: process.getuid!(), gid: process.getgid!(), address: 'unix:path=/nonexistent', lang: 'ja' }, { summary: 's', body: 'b' }, { kind: 'usb_blocked', user: 'x', subject: 's' })).rejects.toThrow(/libglib2\.0-bin/);
  });
  it('a bus nobody listens on: gdbus fails, the delivery rejects (no retry, no hang)', async () => {
    const d = new LinuxNoticeDelivery();
    await expect(d.deliver({ user: 'x', uid: process.getuid!(), gid: process.getgid!(), address: `unix:path=${join(dir, 'nobus')}`, lang: 'ja' }, { summary: 's', body: 'b' }, { kind: 'usb_blocked', user: 'x', subject: 's' })).rejects.toThrow(/gdbus/);
  });
});

describe('Windows helper arguments', () => {
  it('UTF-16LE hex, line breaks as CRLF, box timeout first', () => {
    expect(utf16Hex('A遮')).toBe('41006e90');
    const a = noticeHelperArgs({ summary: '題', body: 'a\nb' });
    expect(a[0]).toMatch(/^\d+$/);
    expect(Buffer.from(a[2]!, 'hex').toString('utf16le')).toBe('a\r\nb');
    expect(a.every((x) => /^[0-9a-f]+$/.test(x))).toBe(true);
  });
});

describe('Windows delivery: the helper\'s exit codes and time bound (stand-in helpers; the real one runs under wine in test/e2e/notify)', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sekimori-notice-helper-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const helper = (name: string, script: string) => {
    const f = join(dir, name);
    writeFileSync(f, `#!/bin/sh\n${script}\n`);
    chmodSync(f, 0o755);
    return f;
  };
  const send = (h: string, boundMs?: number) => {
    const d = new WindowsNoticeDelivery({ helper: h, ...(boundMs ? { boundMs } : {}) });
    const [s] = d.sessions();
    return d.deliver(s!, { summary: '題', body: '本文' });
  };
  const table: [string, string, 'shown' | 'nobody' | RegExp][] = [
    ['sent', 'exit 0', 'shown'],
    ['nobody at the console', 'exit 2', 'nobody'],
    ['send failed', 'echo "WTSSendMessageW failed (5)" >&2; exit 3', /exited 3: .*WTSSendMessageW failed/],
    ['bad arguments', 'exit 64', /exited 64/],
  ];
  for (const [name, script, want] of table) {
    it(name, async () => {
      const p = send(helper(`${name.replace(/\W/g, '_')}.sh`, script));
      if (typeof want === 'string') await expect(p).resolves.toBe(want);
      else await expect(p).rejects.toThrow(want);
    });
  }
  it('the helper gets three ASCII arguments', async () => {
    const out = join(dir, 'args.txt');
    await send(helper('args.sh', `printf '%s\\n' "$@" > ${out}; exit 0`));
    const { readFileSync } = await import('node:fs');
    const args = readFileSync(out, 'utf8').trim().split('\n');
    expect(args).toHaveLength(3);
    expect(Buffer.from(args[1]!, 'hex').toString('utf16le')).toBe('題');
  });
  it('a helper that hangs is killed at the bound; a missing helper fails at once', async () => {
    await expect(send(helper('hang.sh', 'exec sleep 60'), 300)).rejects.toThrow(/SIGKILL|did not finish/);
    await expect(send(join(dir, 'missing.exe'))).rejects.toThrow(/ENOENT/);
  });
});
