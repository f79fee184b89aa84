/**
 * Pure readers of what a terminal's files say about its controls (issue 16). The platform code
 * (linux/, windows/) reads files and values and hands them here; nothing in this file touches the
 * machine, so every parser is tested on fixture trees (test/fixtures/posture/).
 * Evidence strings name what was read ("path:line text", "path=value"); they are safeText'd
 * (file contents and account names are attacker-influenced) and the console escapes them again.
 */
import { POSTURE_LIMITS, type PostureControlReport, type PostureDetail } from '../../protocol/posture.js';
import { safeText } from '../../protocol/text.js';

export const ev = (s: string): string => safeText(s, POSTURE_LIMITS.evidenceText - 8);
const MAX_LINES = 20_000; // a config file longer than this is read up to here (bounded work)

export interface TextFile {
  path: string;
  text: string;
}

function lines(text: string): string[] {
  return text.split('\n', MAX_LINES);
}

function capEvidence(e: string[]): string[] {
  return e.length <= POSTURE_LIMITS.evidence ? e : [...e.slice(0, POSTURE_LIMITS.evidence - 1), ev(`… ${e.length - POSTURE_LIMITS.evidence + 1} more`)];
}

export function report(control: PostureControlReport['control'], state: PostureControlReport['state'], evidence: string[], detail?: PostureDetail): PostureControlReport {
  return { control, state, evidence: capEvidence(evidence.map(ev)), ...(detail ? { detail } : {}) };
}

// ---- USB ---------------------------------------------------------------------------------------

/** Root hubs as read from sysfs: name → authorized_default text (null = unreadable). */
export function usbEnforcedReport(hubs: readonly { name: string; authorizedDefault: string | null }[], mode: string, sysDir: string): PostureControlReport {
  const evidence = hubs.map((h) => `${sysDir}/${h.name}/authorized_default=${h.authorizedDefault ?? '(unreadable)'}`);
  const holding = hubs.filter((h) => h.authorizedDefault === '0' || h.authorizedDefault === '2').length;
  const detail: PostureDetail = { mode, rootHubs: hubs.length, rootHubsHolding: holding };
  if (hubs.length === 0) return report('usb_enforced', 'unknown', [`${sysDir}: no root hubs`], detail);
  return report('usb_enforced', mode === 'enforce' && holding === hubs.length ? 'ok' : 'fail', [`usb mode ${mode}`, ...evidence], detail);
}

/**
 * `options usbcore authorized_default=N` in modprobe.d files (the later file wins, as modprobe reads
 * them in name order; the caller passes them sorted) or `usbcore.authorized_default=N` on the kernel
 * command line (which wins over both when usbcore is built in). Holding values: 0 and 2.
 */
export function bootHoldReport(modprobe: readonly TextFile[], cmdline: string | null, inEffect: string | null): PostureControlReport {
  const evidence: string[] = [];
  let configured: string | null = null;
  for (const f of modprobe) {
    lines(f.text).forEach((raw, i) => {
      const line = raw.replace(/#.*$/, '').trim();
      const m = /^options\s+usbcore\s+(.*)$/.exec(line);
      if (!m) return;
      for (const opt of m[1]!.split(/\s+/)) {
        const o = /^authorized_default=(-?\d{1,3})$/.exec(opt);
        if (o) {
          configured = o[1]!;
          evidence.push(`${f.path}:${i + 1} ${line}`);
        }
      }
    });
  }
  if (cmdline !== null) {
    for (const tok of cmdline.trim().split(/\s+/)) {
      const o = /^usbcore\.authorized_default=(-?\d{1,3})$/.exec(tok);
      if (o) {
        configured = o[1]!;
        evidence.push(`/proc/cmdline ${tok}`);
      }
    }
  }
  const holds = (v: string | null) => v === '0' || v === '2';
  evidence.push(`/sys/module/usbcore/parameters/authorized_default=${inEffect ?? '(unreadable)'}`);
  if (configured === null) evidence.unshift('no modprobe.d option or kernel cmdline sets usbcore authorized_default');
  else if (!holds(configured)) evidence.unshift(`configured value ${configured} does not hold new devices`);
  const detail: PostureDetail = { configured: holds(configured), inEffect };
  const state = inEffect === null ? 'unknown' : holds(configured) && holds(inEffect) ? 'ok' : 'fail';
  return report('usb_boot_hold', state, evidence, detail);
}

/** The read-only udev rule: an uncommented block rule RUNning the usb-readonly helper. */
export function readonlyRuleReport(rules: readonly TextFile[], helperPresent: boolean, helperPath: string): PostureControlReport {
  const evidence: string[] = [];
  for (const f of rules) {
    lines(f.text).forEach((raw, i) => {
      const line = raw.trim();
      if (line.startsWith('#')) return;
      if (/SUBSYSTEM=="block"/.test(line) && /RUN\+="[^"]*\/usb-readonly\b[^"]*"/.test(line)) evidence.push(`${f.path}:${i + 1} ${line}`);
    });
  }
  const present = evidence.length > 0 && helperPresent;
  evidence.push(`${helperPath} ${helperPresent ? 'present' : 'missing'}`);
  if (evidence.length === 1) evidence.unshift('no udev rule runs usb-readonly for block devices');
  return report('usb_readonly_rule', present ? 'ok' : 'fail', evidence, { present });
}

// ---- PAM ---------------------------------------------------------------------------------------

export const PAM_MODULE = 'pam_sekimori.so';
export const PAM_MAX_DEPTH = 8;

/**
 * Does the `auth` stack of `service` reach pam_sekimori? Follows `@include F`, `auth include F` and
 * `auth substack F` (bounded depth; a cycle stops there). `read(name)` returns /etc/pam.d/name's
 * text or null. A line counts only when it is an active auth line (not commented); a `-auth` line
 * (skip if the module is missing) counts too: the posture check also reads whether the module file
 * exists, separately.
 */
export function pamServiceIncludes(
  read: (name: string) => string | null,
  service: string,
  dir = '/etc/pam.d',
  depth = 0,
  seen: Set<string> = new Set(),
): { present: boolean; included: boolean; evidence: string[]; module?: string } {
  const text = read(service);
  if (text === null) return { present: false, included: false, evidence: [] };
  if (depth > PAM_MAX_DEPTH || seen.has(service)) return { present: true, included: false, evidence: [`${dir}/${service}: include depth/cycle limit`] };
  seen.add(service);
  const evidence: string[] = [];
  const ls = lines(text);
  for (let i = 0; i < ls.length; i++) {
    const line = ls[i]!.replace(/#.*$/, '').trim();
    if (!line) continue;
    const inc = /^@include\s+(\S+)$/.exec(line);
    if (inc) {
      const sub = pamServiceIncludes(read, safeName(inc[1]!), dir, depth + 1, seen);
      if (sub.included) return { ...sub, present: true, evidence: [`${dir}/${service}:${i + 1} ${line}`, ...sub.evidence] };
      continue;
    }
    const tok = tokenize(line);
    if (tok.length < 3) continue;
    const type = tok[0]!.replace(/^-/, '');
    if (type !== 'auth') continue;
    const control = tok[1]!;
    if (control === 'include' || control === 'substack') {
      const sub = pamServiceIncludes(read, safeName(tok[2]!), dir, depth + 1, seen);
      if (sub.included) return { ...sub, present: true, evidence: [`${dir}/${service}:${i + 1} ${line}`, ...sub.evidence] };
      continue;
    }
    const mod = tok[2]!;
    if (mod === PAM_MODULE || mod.endsWith('/' + PAM_MODULE)) {
      // `sufficient`/`optional` alone would let the password decide: only a deciding control counts.
      if (control === 'sufficient' || control === 'optional') {
        evidence.push(`${dir}/${service}:${i + 1} ${line} (control ${control} does not require the code)`);
        continue;
      }
      return { present: true, included: true, evidence: [`${dir}/${service}:${i + 1} ${line}`], module: mod };
    }
  }
  return { present: true, included: false, evidence };
}

/** An include target is a file name in the same folder: no path walking out of it. */
function safeName(n: string): string {
  return n.replace(/^.*\//, '');
}

/** PAM line tokens; a bracketed control `[success=1 default=ignore]` is one token. */
function tokenize(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length && out.length < 64) {
    while (line[i] === ' ' || line[i] === '\t') i++;
    if (i >= line.length) break;
    if (line[i] === '[') {
      const end = line.indexOf(']', i);
      const stop = end < 0 ? line.length : end + 1;
      out.push(line.slice(i, stop));
      i = stop;
    } else {
      let j = i;
      while (j < line.length && line[j] !== ' ' && line[j] !== '\t') j++;
      out.push(line.slice(i, j));
      i = j;
    }
  }
  return out;
}

/**
 * The pam_sekimori control over the given services (those absent on the terminal are listed as not
 * present). `moduleFile(token)` resolves the module token of the deciding line (a bare name in the
 * PAM module folders, or an absolute path) to the file found, or null: a stack naming a module that
 * is not there is not MFA.
 */
export function pamServicesReport(read: (name: string) => string | null, services: readonly string[], moduleFile: (token: string) => string | null, dir = '/etc/pam.d'): PostureControlReport {
  const rows: { name: string; present: boolean; included: boolean }[] = [];
  const evidence: string[] = [];
  for (const s of services) {
    const r = pamServiceIncludes(read, s, dir);
    const file = r.included && r.module ? moduleFile(r.module) : null;
    rows.push({ name: s, present: r.present, included: r.present && r.included && file !== null });
    if (!r.present) continue;
    if (r.included && file) evidence.push(`${s}: included via ${r.evidence.join(' → ')} (${file} present)`);
    else if (r.included) evidence.push(`${s}: NOT effective — ${r.evidence.join(' → ')} but module ${r.module ?? ''} missing`);
    else evidence.push(`${s}: NOT included${r.evidence.length ? ' — ' + r.evidence.join(' ; ') : ''}`);
  }
  const present = rows.filter((r) => r.present);
  const state = present.length === 0 ? 'unknown' : present.every((r) => r.included) ? 'ok' : 'fail';
  if (present.length === 0) evidence.push(`${dir}: none of ${services.join(', ')}`);
  return report('mfa_pam_services', state, evidence, { services: rows });
}

// ---- accounts ----------------------------------------------------------------------------------

const NO_LOGIN_SHELLS = /(^|\/)(nologin|false|sync|shutdown|halt)$/;

/**
 * Local accounts that can log in: a real shell in /etc/passwd and a usable password in /etc/shadow
 * (not locked '!…', not '*', not empty-and-disabled). An account with no shadow entry and 'x' in
 * passwd has no password (cannot log in with one); a non-'x' passwd hash counts as usable.
 */
export function loginAccounts(passwd: string, shadow: string | null): { name: string; evidence: string }[] {
  const shadowOf = new Map<string, string>();
  if (shadow !== null)
    for (const l of lines(shadow)) {
      const f = l.split(':');
      if (f.length >= 2 && f[0]) shadowOf.set(f[0], f[1]!);
    }
  const out: { name: string; evidence: string }[] = [];
  for (const l of lines(passwd)) {
    const f = l.split(':');
    if (f.length < 7 || !f[0] || l.startsWith('#')) continue;
    const [name, pw, , , , , shell] = f as [string, string, string, string, string, string, string];
    if (!shell || NO_LOGIN_SHELLS.test(shell.trim())) continue;
    const hash = pw === 'x' ? (shadowOf.get(name) ?? null) : pw;
    if (hash === null || hash === '' || hash.startsWith('!') || hash.startsWith('*')) continue;
    out.push({ name, evidence: `/etc/passwd ${name} shell ${shell.trim()}, password set` });
    if (out.length >= POSTURE_LIMITS.items) break;
  }
  return out;
}

/** `enrolled` = the users the agent knows to hold an MFA enrolment (null = not known here: the console fills it in). */
export function enrolmentReport(accounts: readonly { name: string; evidence: string }[], enrolled: ReadonlySet<string> | null): PostureControlReport {
  const names = accounts.map((a) => safeText(a.name, POSTURE_LIMITS.name));
  if (enrolled === null) return report('mfa_enrolment', 'unknown', [...accounts.map((a) => a.evidence), 'enrolment known at the console'], { accounts: names });
  const unenrolled = names.filter((n) => !enrolled.has(n));
  return report('mfa_enrolment', unenrolled.length ? 'fail' : 'ok', [...accounts.map((a) => a.evidence), ...unenrolled.map((n) => `${n}: no MFA enrolment`)], { accounts: names, unenrolled });
}

// ---- screen lock (GNOME dconf) -----------------------------------------------------------------

export const GNOME_KEYS = {
  idleDelay: { dir: 'org/gnome/desktop/session', key: 'idle-delay' },
  lockEnabled: { dir: 'org/gnome/desktop/screensaver', key: 'lock-enabled' },
} as const;
/** GNOME's schema defaults (org.gnome.desktop.session idle-delay 300 s, screensaver lock-enabled true). */
export const GNOME_DEFAULTS = { idleDelaySeconds: 300, lockEnabled: true } as const;

/** A dconf keyfile (or `dconf dump` output): `[dir]` groups of `key=GVariant text`. */
export function parseKeyfile(text: string): Map<string, { value: string; line: number }> {
  const out = new Map<string, { value: string; line: number }>();
  let group = '';
  lines(text).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) return;
    const g = /^\[([^\]]*)\]$/.exec(line);
    if (g) {
      group = g[1]!.replace(/^\/+|\/+$/g, '');
      return;
    }
    const eq = line.indexOf('=');
    if (eq <= 0 || !group) return;
    out.set(`/${group}/${line.slice(0, eq).trim()}`, { value: line.slice(eq + 1).trim(), line: i + 1 });
  });
  return out;
}

/** `uint32 300`, `300`, `@u 300` → 300; anything else null. */
export function gvariantUint(v: string): number | null {
  const m = /^(?:(?:uint32|@u|uint64|int32)\s+)?(\d{1,10})$/.exec(v.trim());
  if (!m) return null;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n <= 0xffffffff ? n : null;
}
export function gvariantBool(v: string): boolean | null {
  const t = v.trim();
  return t === 'true' ? true : t === 'false' ? false : null;
}

export interface DconfInput {
  /** GNOME's schemas are installed (else there is no GNOME screen lock to judge). */
  gnome: boolean;
  /** System database keyfiles (/etc/dconf/db/local.d/*), in name order (later wins, as dconf compiles them). */
  system: readonly TextFile[];
  /** Lock files (/etc/dconf/db/local.d/locks/*): one key path per line. */
  locks: readonly TextFile[];
  /** Per-user settings (`dconf dump /` as each login account); a user's value wins unless the key is locked. */
  users: readonly { user: string; dump: string }[];
}

/**
 * The effective idle delay and lock setting, worst case over the users: a locked system value holds
 * for everyone; otherwise each user's own value, else the system value, else GNOME's default.
 */
export function screenLockReport(input: DconfInput, maxIdleMinutes: number, enforce: boolean): PostureControlReport {
  if (!input.gnome) return report('screen_lock', 'unknown', ['no GNOME desktop schemas (org.gnome.desktop.session): screen lock not read'], { idleDelaySeconds: null, lockEnabled: null });
  const evidence: string[] = [];
  const sys = new Map<string, { value: string; where: string }>();
  for (const f of input.system) for (const [k, v] of parseKeyfile(f.text)) sys.set(k, { value: v.value, where: `${f.path}:${v.line}` });
  const locked = new Map<string, string>();
  for (const f of input.locks)
    lines(f.text).forEach((raw, i) => {
      const l = raw.trim();
      if (l && !l.startsWith('#')) locked.set(l, `${f.path}:${i + 1}`);
    });
  const idleKey = `/${GNOME_KEYS.idleDelay.dir}/${GNOME_KEYS.idleDelay.key}`;
  const lockKey = `/${GNOME_KEYS.lockEnabled.dir}/${GNOME_KEYS.lockEnabled.key}`;
  const resolve = <T>(key: string, parse: (v: string) => T | null, dflt: T, user: { user: string; map: Map<string, { value: string; line: number }> } | null): { value: T | null; why: string } => {
    const s = sys.get(key);
    if (locked.has(key) && s) return { value: parse(s.value), why: `${s.where} ${key}=${s.value} (locked ${locked.get(key)})` };
    const u = user?.map.get(key);
    if (u) return { value: parse(u.value), why: `user ${user!.user}: ${key}=${u.value}` };
    if (s) return { value: parse(s.value), why: `${s.where} ${key}=${s.value}` };
    return { value: dflt, why: `${key} default ${String(dflt)}` };
  };
  const subjects = input.users.length ? input.users.map((u) => ({ user: u.user, map: parseKeyfile(u.dump) })) : [null];
  let worstIdle: number | null = -1;
  let lockEnabled: boolean | null = true;
  for (const subj of subjects) {
    const idle = resolve(idleKey, gvariantUint, GNOME_DEFAULTS.idleDelaySeconds, subj);
    const lock = resolve(lockKey, gvariantBool, GNOME_DEFAULTS.lockEnabled, subj);
    evidence.push(idle.why, lock.why);
    // 0 = never idle: the worst value there is.
    if (idle.value === null) worstIdle = null;
    else if (worstIdle !== null && worstIdle !== 0 && (idle.value === 0 || idle.value > worstIdle)) worstIdle = idle.value;
    if (lock.value === null) lockEnabled = lockEnabled === false ? false : null;
    else if (lock.value === false) lockEnabled = false;
  }
  const lockedDown = locked.has(idleKey) && locked.has(lockKey) && sys.has(idleKey) && sys.has(lockKey);
  if (lockedDown) evidence.push(`locked: ${locked.get(idleKey)}, ${locked.get(lockKey)}`);
  const idleDelaySeconds = worstIdle === -1 ? null : worstIdle;
  const ok = lockEnabled === true && idleDelaySeconds !== null && idleDelaySeconds > 0 && idleDelaySeconds <= maxIdleMinutes * 60 && (!enforce || lockedDown);
  const state = idleDelaySeconds === null || lockEnabled === null ? 'unknown' : ok ? 'ok' : 'fail';
  return report('screen_lock', state, [`maximum ${maxIdleMinutes} min${enforce ? ', enforced' : ''}`, ...evidence], { idleDelaySeconds, lockEnabled, lockedDown });
}

/** The keyfile and lock file the agent writes when the policy enforces the screen lock (then `dconf update`). */
export function screenLockFiles(maxIdleMinutes: number): { keyfile: string; locks: string } {
  const secs = Math.max(60, Math.min(maxIdleMinutes * 60, 24 * 3600));
  return {
    keyfile: `# Sekimori (関守): screen lock required by the signed policy (agent.screenLock). Rewritten by the agent.\n[${GNOME_KEYS.idleDelay.dir}]\n${GNOME_KEYS.idleDelay.key}=uint32 ${secs}\n\n[${GNOME_KEYS.lockEnabled.dir}]\n${GNOME_KEYS.lockEnabled.key}=true\nlock-delay=uint32 0\n`,
    locks: `/${GNOME_KEYS.idleDelay.dir}/${GNOME_KEYS.idleDelay.key}\n/${GNOME_KEYS.lockEnabled.dir}/${GNOME_KEYS.lockEnabled.key}\n/${GNOME_KEYS.lockEnabled.dir}/lock-delay\n`,
  };
}

// ---- software and health -----------------------------------------------------------------------

export function softwareReport(mode: string | null, preexec: { running: boolean; why: string } | null): PostureControlReport {
  if (mode === null) return report('software_enforcement', 'unknown', ['software capability status not readable'], {});
  const evidence = [`software mode ${mode}`];
  if (preexec) evidence.push(`pre-exec helper ${preexec.running ? 'running' : 'not running'}${preexec.why ? ': ' + preexec.why : ''}`);
  else evidence.push('no pre-exec mechanism on this platform');
  const ok = mode === 'enforce' && (preexec === null || preexec.running);
  return report('software_enforcement', ok ? 'ok' : 'fail', evidence, { mode, preexecRunning: preexec ? preexec.running : null });
}

export function healthReport(h: { agentVersion: string; policyVersion: number; clockOffsetMs: number; outboxDepth: number; maxClockOffsetMs: number; maxOutboxDepth: number }): PostureControlReport {
  const ok = Math.abs(h.clockOffsetMs) <= h.maxClockOffsetMs && h.outboxDepth <= h.maxOutboxDepth;
  return report('agent_health', ok ? 'ok' : 'fail', [`agent ${h.agentVersion}`, `policy v${h.policyVersion}`, `clock offset ${h.clockOffsetMs} ms`, `outbox ${h.outboxDepth} events`], { clockOffsetMs: h.clockOffsetMs });
}
