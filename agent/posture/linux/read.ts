/**
 * Linux I/O of the posture probe: reads the files and sysfs values agent/posture/probe.ts judges.
 * Every path is under `root` (/ on a terminal; a fixture tree in tests) or `sysRoot`/`procRoot`,
 * every file read is size-capped and every command has a timeout.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MFA_PAM_SERVICES, type PostureControlReport } from '../../../protocol/posture.js';
import { listRootHubs, usbDevicesDir } from '../../usb/linux/sysfs.js';
import {
  bootHoldReport,
  loginAccounts,
  pamServicesReport,
  PAM_MODULE,
  readonlyRuleReport,
  screenLockFiles,
  screenLockReport,
  type DconfInput,
  type TextFile,
} from '../probe.js';

export interface LinuxPostureRoots {
  root: string; // '/' on a terminal
  sysRoot: string; // '/sys'
  procRoot: string; // '/proc'
}

const MAX_FILE = 1024 * 1024;
const execFileP = promisify(execFile);
const MAX_DIR_FILES = 500;

export function readSmall(path: string): string | null {
  try {
    const st = statSync(path);
    if (!st.isFile() || st.size > MAX_FILE) return null;
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function trimmed(path: string): string | null {
  const t = readSmall(path);
  return t === null ? null : t.trim();
}

/** Files of a config folder matching `suffix`, by name; an earlier folder's file shadows a later one's of the same name (as modprobe and udev do). */
export function configFiles(root: string, dirs: readonly string[], suffix: string): TextFile[] {
  const byName = new Map<string, string>();
  for (const d of dirs) {
    let names: string[] = [];
    try {
      names = readdirSync(join(root, d)).slice(0, MAX_DIR_FILES);
    } catch {
      continue;
    }
    for (const n of names) if (n.endsWith(suffix) && !byName.has(n)) byName.set(n, join(d, n));
  }
  const out: TextFile[] = [];
  for (const n of [...byName.keys()].sort()) {
    const p = byName.get(n)!;
    const text = readSmall(join(root, p));
    if (text !== null) out.push({ path: p, text });
  }
  return out;
}

export function usbHubs(sysRoot: string): { name: string; authorizedDefault: string | null }[] {
  return listRootHubs(sysRoot).map((name) => ({ name, authorizedDefault: trimmed(join(usbDevicesDir(sysRoot), name, 'authorized_default')) }));
}

export function bootHold(r: LinuxPostureRoots): PostureControlReport {
  const modprobe = configFiles(r.root, ['/etc/modprobe.d', '/run/modprobe.d', '/usr/local/lib/modprobe.d', '/usr/lib/modprobe.d', '/lib/modprobe.d'], '.conf');
  return bootHoldReport(modprobe, trimmed(join(r.procRoot, 'cmdline')), trimmed(join(r.sysRoot, 'module', 'usbcore', 'parameters', 'authorized_default')));
}

export const READONLY_HELPER = '/usr/lib/sekimori/usb-readonly';

export function readonlyRule(r: LinuxPostureRoots): PostureControlReport {
  const rules = configFiles(r.root, ['/etc/udev/rules.d', '/run/udev/rules.d', '/usr/lib/udev/rules.d', '/lib/udev/rules.d'], '.rules');
  return readonlyRuleReport(rules, existsSync(join(r.root, READONLY_HELPER)), READONLY_HELPER);
}

const PAM_DIRS = ['/lib/x86_64-linux-gnu/security', '/usr/lib/x86_64-linux-gnu/security', '/lib/aarch64-linux-gnu/security', '/usr/lib/aarch64-linux-gnu/security', '/lib/security', '/usr/lib/security', '/lib64/security', '/usr/lib64/security'];

export function pamServices(r: LinuxPostureRoots, services: readonly string[] = MFA_PAM_SERVICES): PostureControlReport {
  const dir = '/etc/pam.d';
  const read = (name: string) => (/^[A-Za-z0-9._-]{1,128}$/.test(name) ? readSmall(join(r.root, dir, name)) : null);
  const moduleFile = (token: string): string | null => {
    const cands = token.startsWith('/') ? [token] : token === PAM_MODULE ? PAM_DIRS.map((d) => `${d}/${PAM_MODULE}`) : [];
    for (const c of cands) {
      try {
        if (statSync(join(r.root, c)).isFile()) return c;
      } catch {
        /* next */
      }
    }
    return null;
  };
  return pamServicesReport(read, services, moduleFile, dir);
}

export function accounts(r: LinuxPostureRoots): { name: string; evidence: string }[] {
  return loginAccounts(readSmall(join(r.root, 'etc/passwd')) ?? '', readSmall(join(r.root, 'etc/shadow')));
}

/** Home folders of login accounts (from /etc/passwd), for reading their dconf settings. */
function homes(r: LinuxPostureRoots, names: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const l of (readSmall(join(r.root, 'etc/passwd')) ?? '').split('\n', 20_000)) {
    const f = l.split(':');
    if (f.length >= 7 && names.includes(f[0]!)) out.set(f[0]!, f[5]!);
  }
  return out;
}

export const DCONF_LOCAL = '/etc/dconf/db/local.d';
export const DCONF_FILE = '00-sekimori-screenlock';

/**
 * dconf inputs: the system database's keyfiles and locks, and each login account's own settings
 * (`dconf dump /` as that user, only when run as root on the real root and the user has a database).
 */
export async function dconfInput(r: LinuxPostureRoots, users: readonly string[], runAsUsers: boolean): Promise<DconfInput> {
  const gnome = existsSync(join(r.root, 'usr/share/glib-2.0/schemas/org.gnome.desktop.session.gschema.xml'));
  const system = configFiles(r.root, [DCONF_LOCAL], '').filter((f) => !f.path.endsWith('/locks'));
  const locks = configFiles(r.root, [`${DCONF_LOCAL}/locks`], '');
  const dumps: { user: string; dump: string }[] = [];
  if (runAsUsers && gnome) {
    const h = homes(r, users);
    for (const u of users.slice(0, 50)) {
      const home = h.get(u);
      if (!home || !existsSync(join(home, '.config/dconf/user'))) continue;
      try {
        // Asynchronous: the agent's event loop keeps judging USB devices meanwhile.
        const { stdout: dump } = await execFileP('runuser', ['-u', u, '--', 'dconf', 'dump', '/org/gnome/desktop/'], { timeout: 5000, maxBuffer: MAX_FILE, encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: home } });
        // The dump is relative to the folder asked for: put the groups back under it.
        dumps.push({ user: u, dump: dump.replace(/^\[([^\]]*)\]$/gm, (_m, g: string) => (g === '/' ? '[org/gnome/desktop]' : `[org/gnome/desktop/${g}]`)) });
      } catch {
        /* no dconf, or the user's database unreadable: the system value or default stands */
      }
    }
  }
  return { gnome, system, locks, users: dumps };
}

export async function screenLock(r: LinuxPostureRoots, users: readonly string[], maxIdleMinutes: number, enforce: boolean, runAsUsers: boolean): Promise<PostureControlReport> {
  return screenLockReport(await dconfInput(r, users, runAsUsers), maxIdleMinutes, enforce);
}

/** The files the agent writes when the policy enforces the screen lock; the caller emits first, then runs `dconf update`. */
export function screenLockTargets(r: LinuxPostureRoots, maxIdleMinutes: number): { path: string; text: string }[] {
  const f = screenLockFiles(maxIdleMinutes);
  return [
    { path: join(r.root, DCONF_LOCAL, DCONF_FILE), text: f.keyfile },
    { path: join(r.root, DCONF_LOCAL, 'locks', DCONF_FILE), text: f.locks },
  ];
}
