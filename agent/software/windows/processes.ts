/**
 * Windows processes, pure parts: reading sekimori-proclist.exe's listing (proclist.c), telling
 * new processes from known ones, and the agent's own ancestry. A process is identified by pid AND
 * creation time: Windows reuses pids quickly, so a pid alone may be someone else a moment later.
 */

export interface WinProcess {
  pid: number;
  ppid: number;
  /** FILETIME of creation as a decimal string ('0' when the helper could not open the process). */
  created: string;
  /** Win32 image path, or null when unreadable (protected and system processes). */
  image: string | null;
  /** DOMAIN\name of the process owner, or null. */
  user: string | null;
}

/** UTF-16LE hex → text; null for '-', malformed hex or an odd number of bytes. */
export function decodeHex16(hex: string): string | null {
  if (hex === '-' || hex.length === 0 || hex.length % 4 !== 0 || hex.length > 4 * 32_768 || !/^[0-9a-f]+$/.test(hex)) return null;
  return Buffer.from(hex, 'hex').toString('utf16le');
}

/** Text → UTF-16LE hex (what `sekimori-proclist kill` takes). */
export function encodeHex16(s: string): string {
  return Buffer.from(s, 'utf16le').toString('hex');
}

/**
 * Parses `sekimori-proclist list`. Returns null unless the listing is complete (an END line whose
 * count matches): a cut-off listing must not make running processes look gone.
 */
export function parseProcList(text: string): WinProcess[] | null {
  const out: WinProcess[] = [];
  const seen = new Set<number>();
  let end: number | null = null;
  for (const line of text.split(/\r?\n/)) {
    if (line === '') continue;
    if (end !== null) return null; // nothing may follow END
    const e = /^END (\d{1,7})$/.exec(line);
    if (e) {
      end = Number(e[1]);
      continue;
    }
    const p = parseP(line);
    if (!p || seen.has(p.pid)) return null;
    seen.add(p.pid);
    out.push(p);
  }
  return end !== null && end === out.length ? out : null;
}

const P_LINE = /^P (\d{1,10}) (\d{1,10}) (\d{1,20}) (-|[0-9a-f]+) (-|[0-9a-f]+)$/;

function parseP(line: string): WinProcess | null {
  const m = P_LINE.exec(line);
  if (!m) return null;
  const pid = Number(m[1]);
  if (pid > 0xffffffff) return null;
  return { pid, ppid: Number(m[2]), created: m[3]!.replace(/^0+(?=\d)/, ''), image: decodeHex16(m[4]!), user: decodeHex16(m[5]!) };
}

export type WatchUpdate = { kind: 'snapshot'; fresh: WinProcess[] } | { kind: 'desync'; reason: string };

/**
 * The state of `sekimori-proclist watch`: P (new), G (gone) and T (snapshot done) lines applied to
 * the running set. A snapshot's new processes are released only at its T line, and only when the
 * count agrees with the set: anything else (junk, a G for an unknown process, a wrong count) is a
 * desync — the caller restarts the helper rather than judge from a set it cannot trust.
 */
export class ProcWatchState {
  readonly running = new Map<number, WinProcess>();
  private fresh: WinProcess[] = [];
  private partial = '';

  /** Feeds raw output; returns the completed snapshots (and at most one desync, which ends the batch). */
  feed(chunk: string): WatchUpdate[] {
    const out: WatchUpdate[] = [];
    const text = this.partial + chunk;
    const lines = text.split(/\r?\n/);
    this.partial = lines.pop() ?? '';
    if (this.partial.length > 300_000) return [{ kind: 'desync', reason: 'line too long' }];
    for (const line of lines) {
      if (line === '') continue;
      const u = this.line(line);
      if (u) {
        out.push(u);
        if (u.kind === 'desync') return out;
      }
    }
    return out;
  }

  private line(line: string): WatchUpdate | null {
    if (line.startsWith('P ')) {
      const p = parseP(line);
      if (!p) return { kind: 'desync', reason: 'bad P line' };
      if (this.running.has(p.pid)) return { kind: 'desync', reason: 'new process on a running pid' };
      this.running.set(p.pid, p);
      this.fresh.push(p);
      return null;
    }
    const g = /^G (\d{1,10}) (\d{1,20})$/.exec(line);
    if (g) {
      const pid = Number(g[1]);
      const created = g[2]!.replace(/^0+(?=\d)/, '');
      const cur = this.running.get(pid);
      if (!cur || cur.created !== created) return { kind: 'desync', reason: 'gone process unknown' };
      this.running.delete(pid);
      this.fresh = this.fresh.filter((p) => !(p.pid === pid && p.created === created));
      return null;
    }
    const t = /^T (\d{1,7})$/.exec(line);
    if (t) {
      if (Number(t[1]) !== this.running.size) return { kind: 'desync', reason: 'count mismatch' };
      const fresh = this.fresh.filter((p) => p.image !== null);
      this.fresh = [];
      return { kind: 'snapshot', fresh };
    }
    return { kind: 'desync', reason: 'unknown line' };
  }
}

export const processIdentity = (p: Pick<WinProcess, 'pid' | 'created'>): string => `${p.pid}:${p.created}`;

/**
 * This process and its ancestors, never to be killed. A parent counts only if it was created
 * before its child: Windows keeps a dead parent's pid in the child's record, and that pid may
 * belong to an unrelated, younger process by now.
 */
export function windowsAncestry(pid: number, list: readonly WinProcess[]): Set<number> {
  const byPid = new Map(list.map((p) => [p.pid, p]));
  const out = new Set<number>([pid]);
  let cur = byPid.get(pid);
  for (let i = 0; i < 64 && cur; i++) {
    const parent = byPid.get(cur.ppid);
    if (!parent || parent.pid === cur.pid || out.has(parent.pid)) break;
    if (!(BigInt(parent.created) < BigInt(cur.created) || cur.created === '0')) break;
    out.add(parent.pid);
    cur = parent;
  }
  out.add(0); // System Idle Process
  out.add(4); // System
  return out;
}

/** Exit codes of `sekimori-proclist kill`. */
export function killResultOf(code: number | null): 'killed' | 'gone' | 'changed' | 'failed' {
  return code === 0 ? 'killed' : code === 3 ? 'gone' : code === 4 ? 'changed' : 'failed';
}
