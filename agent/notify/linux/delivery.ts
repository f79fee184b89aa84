/**
 * Linux delivery of notices: org.freedesktop.Notifications.Notify on the session bus of each
 * logged-in user, called with `gdbus` (Debian libglib2.0-bin) run AS THAT USER (uid/gid; libuv
 * drops root's supplementary groups). A session bus accepts connections from the user who owns it
 * (dbus-daemon's default policy, and dbus-broker's), so the agent does not connect as root.
 *
 * Who is logged in: utmp (what `who` reads); their bus: /run/user/UID/bus (systemd's user bus),
 * else DBUS_SESSION_BUS_ADDRESS from one of their processes' environment; their language: LC_ALL /
 * LC_MESSAGES / LANG of such a process, else the agent's own (SEKIMORI_LANG / LANG, default ja).
 *
 * Test only: SEKIMORI_NOTIFY_BUS=<address> (and optionally SEKIMORI_NOTIFY_UID=<uid>) replaces the
 * session discovery with that one bus, for whichever user the notice is for.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { lang as agentLang } from '../../../protocol/i18n.js';
import type { Notice } from '../../../protocol/notice.js';
import { parseUtmp } from '../../usb/linux/user.js';
import type { NoticeDelivery, NoticeSession } from '../notifier.js';

/** gdbus's own call timeout (s) and our hard bound on the process (ms). */
export const GDBUS_TIMEOUT_S = 5;
export const DELIVERY_BOUND_MS = 8_000;
const PROC_SCAN_MAX = 4096;
const SESSION_CACHE_MS = 2_000;

/**
 * A GVariant text-format string literal that is pure printable ASCII: gdbus parses its arguments
 * as GVariant text, so every quote, backslash, control and non-ASCII character is escaped.
 */
export function gvariantString(s: string): string {
  let out = "'";
  for (const ch of s.toWellFormed()) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === "'") out += "\\'";
    else if (c >= 0x20 && c <= 0x7e) out += ch;
    else if (c <= 0xffff) out += '\\u' + c.toString(16).padStart(4, '0');
    else out += '\\U' + c.toString(16).padStart(8, '0');
  }
  return out + "'";
}

/** The gdbus command line for one Notify call (arguments typed, so no introspection is needed). */
export function gdbusNotifyArgs(text: { summary: string; body: string }, urgency: 0 | 1 | 2 = 1): string[] {
  return [
    'call',
    '--session',
    '--dest',
    'org.freedesktop.Notifications',
    '--object-path',
    '/org/freedesktop/Notifications',
    '--method',
    'org.freedesktop.Notifications.Notify',
    '--timeout',
    String(GDBUS_TIMEOUT_S),
    gvariantString('Sekimori'),
    'uint32 0',
    gvariantString('dialog-warning'),
    gvariantString(text.summary),
    gvariantString(text.body),
    '@as []',
    `@a{sv} {'urgency': <byte ${urgency}>}`,
    'int32 -1',
  ];
}

/**
 * Only a local Unix-socket bus is used: an address from a user's environment could name a TCP
 * host or `unixexec:` (run a program) — refused, as is a list of several addresses.
 */
export function acceptBusAddress(addr: string | undefined): string | null {
  if (!addr || addr.length > 512 || addr.includes(';')) return null;
  return /^unix:(path|abstract)=[^,]+(,guid=[0-9a-f]{32})?$/.test(addr) ? addr : null;
}

/** The language a session's environment asks for (LC_ALL > LC_MESSAGES > LANG); null when it names none. */
export function langOfEnv(env: Record<string, string>): 'ja' | 'en' | null {
  for (const k of ['LC_ALL', 'LC_MESSAGES', 'LANG'] as const) {
    const v = env[k];
    if (!v) continue;
    if (/^en([_.@]|$)/i.test(v)) return 'en';
    if (/^ja([_.@]|$)/i.test(v)) return 'ja';
    if (v === 'C' || v.startsWith('C.') || v === 'POSIX') continue;
    return null;
  }
  return null;
}

/** /proc/PID/environ bytes → variables (NUL-separated KEY=VALUE). */
export function parseEnviron(buf: Buffer): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of buf.toString('utf8').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

export interface PasswdEntry {
  user: string;
  uid: number;
  gid: number;
  home: string;
}

/** One account from /etc/passwd text; null when absent or malformed. */
export function passwdEntry(text: string, user: string): PasswdEntry | null {
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || f[0] !== user) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (!Number.isSafeInteger(uid) || !Number.isSafeInteger(gid) || uid < 0 || gid < 0) return null;
    return { user, uid, gid, home: f[5] || '/' };
  }
  return null;
}

export interface LinuxNoticeOptions {
  utmpPaths?: string[];
  passwdPath?: string;
  procRoot?: string;
  runUserRoot?: string;
  env?: NodeJS.ProcessEnv;
  /** The gdbus program (tests may point at another path). */
  gdbus?: string;
  /** Hard bound on one gdbus process (ms); default DELIVERY_BOUND_MS. */
  boundMs?: number;
}

export class LinuxNoticeDelivery implements NoticeDelivery {
  readonly name = 'linux-dbus';
  private cache: { at: number; sessions: NoticeSession[] } | null = null;

  constructor(private readonly opts: LinuxNoticeOptions = {}) {}

  sessions(): NoticeSession[] {
    const env = this.opts.env ?? process.env;
    const fallbackLang = agentLang();
    const override = acceptBusAddress(env.SEKIMORI_NOTIFY_BUS);
    if (env.SEKIMORI_NOTIFY_BUS !== undefined) {
      if (!override) return [];
      const uid = Number(env.SEKIMORI_NOTIFY_UID ?? process.getuid?.() ?? 0);
      if (!Number.isSafeInteger(uid) || uid < 0) return [];
      return [{ user: '', uid, gid: Number(env.SEKIMORI_NOTIFY_GID ?? uid), address: override, lang: fallbackLang }];
    }
    if (this.cache && Date.now() - this.cache.at < SESSION_CACHE_MS) return this.cache.sessions;
    let sessions: NoticeSession[] = [];
    try {
      sessions = this.discover(fallbackLang);
    } catch {
      sessions = [];
    }
    this.cache = { at: Date.now(), sessions };
    return sessions;
  }

  private discover(fallbackLang: 'ja' | 'en'): NoticeSession[] {
    const users = new Set<string>();
    for (const p of this.opts.utmpPaths ?? ['/run/utmp', '/var/run/utmp']) {
      try {
        for (const u of parseUtmp(readFileSync(p))) users.add(u.user);
        break;
      } catch {
        continue;
      }
    }
    if (!users.size) return [];
    let passwd = '';
    try {
      passwd = readFileSync(this.opts.passwdPath ?? '/etc/passwd', 'utf8');
    } catch {
      return [];
    }
    const envs = this.sessionEnvs();
    const out: NoticeSession[] = [];
    for (const user of users) {
      const pw = passwdEntry(passwd, user);
      if (!pw || pw.uid === 0) continue; // root's own desktop is not a member of staff's
      const own = envs.get(pw.uid) ?? [];
      const runBus = `${this.opts.runUserRoot ?? '/run/user'}/${pw.uid}/bus`;
      let address: string | null = null;
      try {
        if (statSync(runBus).isSocket()) address = `unix:path=${runBus}`;
      } catch {
        address = null;
      }
      address ??= own.map((e) => acceptBusAddress(e.DBUS_SESSION_BUS_ADDRESS)).find((a) => a !== null) ?? null;
      if (!address) continue;
      const lang = own.map(langOfEnv).find((l) => l !== null) ?? fallbackLang;
      out.push({ user, uid: pw.uid, gid: pw.gid, address, lang });
    }
    return out;
  }

  /** Environments of desktop-session processes per uid (those that know their session bus). Bounded scan. */
  private sessionEnvs(): Map<number, Record<string, string>[]> {
    const root = this.opts.procRoot ?? '/proc';
    const out = new Map<number, Record<string, string>[]>();
    let names: string[] = [];
    try {
      names = readdirSync(root).filter((n) => /^\d+$/.test(n)).slice(0, PROC_SCAN_MAX);
    } catch {
      return out;
    }
    for (const pid of names) {
      try {
        const uid = statSync(`${root}/${pid}`).uid;
        if (uid === 0) continue;
        const env = parseEnviron(readFileSync(`${root}/${pid}/environ`).subarray(0, 64 * 1024));
        if (!env.DBUS_SESSION_BUS_ADDRESS && !env.DISPLAY && !env.WAYLAND_DISPLAY) continue;
        const list = out.get(uid) ?? [];
        if (list.length < 8) list.push(env);
        out.set(uid, list);
      } catch {
        continue; // gone, or not readable
      }
    }
    return out;
  }

  deliver(s: NoticeSession, text: { summary: string; body: string }, n: Notice): Promise<'shown' | 'nobody'> {
    const urgency = n.kind === 'usb_blocked' || n.kind === 'software_stopped' ? 2 : 1;
    const asOther = typeof process.getuid === 'function' && process.getuid() !== s.uid;
    const boundMs = this.opts.boundMs ?? DELIVERY_BOUND_MS;
    return new Promise<'shown' | 'nobody'>((resolve, reject) => {
      let settled = false;
      let stderr = '';
      const done = (e: Error | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(bound);
        if (e) reject(e);
        else resolve('shown');
      };
      let child: ReturnType<typeof spawn>;
      try {
        child = spawn(this.opts.gdbus ?? 'gdbus', gdbusNotifyArgs(text, urgency), {
          stdio: ['ignore', 'ignore', 'pipe'],
          env: { DBUS_SESSION_BUS_ADDRESS: s.address, PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8', HOME: '/' },
          cwd: '/',
          ...(asOther ? { uid: s.uid, gid: s.gid } : {}),
          timeout: boundMs,
          killSignal: 'SIGKILL',
        });
      } catch (e) {
        done(e as Error);
        return;
      }
      const bound = setTimeout(() => {
        child.kill('SIGKILL');
        done(new Error(`gdbus did not finish within ${boundMs} ms`));
      }, boundMs + 500);
      bound.unref();
      child.stderr?.on('data', (b: Buffer) => {
        if (stderr.length < 1024) stderr += b.toString('utf8');
      });
      child.on('error', (e: NodeJS.ErrnoException) =>
        done(new Error(e.code === 'ENOENT' ? 'gdbus not found (apt-get install libglib2.0-bin)' : e.message)),
      );
      child.on('close', (code, signal) => {
        if (code === 0) done(null);
        else done(new Error(`gdbus exited ${code ?? signal}: ${stderr.trim().slice(0, 300)}`));
      });
    });
  }
}
