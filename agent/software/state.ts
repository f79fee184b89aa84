/**
 * The software capability's state files under STATE/software/, all through the agent's one
 * durable writer: restored.json (files an administrator put back: never quarantined again) and
 * packages.json (the installed-software snapshot, so changes made while the agent was down are
 * reported at start).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonState, writeJsonState } from '../durable.js';
import type { LocalExemption } from './decide.js';
import type { InstalledProgram, QuarantineRecord } from './platform.js';

const isExemption = (x: unknown): x is LocalExemption => {
  const e = x as Partial<LocalExemption> | null;
  return !!e && typeof e.path === 'string' && typeof e.sha256 === 'string';
};

const isProgram = (x: unknown): x is InstalledProgram => {
  const p = x as Partial<InstalledProgram> | null;
  return !!p && typeof p.name === 'string' && typeof p.version === 'string' && typeof p.arch === 'string';
};

/** Quarantine ids are random UUIDs: anything else never names a file in the quarantine. */
export const QUARANTINE_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The quarantine's records (`<id>.json` beside `<id>.bin`), oldest first; the same layout on every
 * platform. A record without its file, or with an id that is not one of ours, is not listed.
 */
export function listQuarantine(dir: string): QuarantineRecord[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: QuarantineRecord[] = [];
  for (const n of names) {
    if (!n.endsWith('.json')) continue;
    try {
      const rec = JSON.parse(readFileSync(join(dir, n), 'utf8')) as QuarantineRecord;
      if (QUARANTINE_ID_RE.test(rec.id) && existsSync(join(dir, `${rec.id}.bin`))) out.push(rec);
    } catch {
      // unreadable record: left for an administrator to look at
    }
  }
  return out.sort((a, b) => a.quarantinedAt.localeCompare(b.quarantinedAt));
}

export class SoftwareState {
  readonly dir: string;
  constructor(stateDir: string) {
    this.dir = join(stateDir, 'software');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  loadExemptions(): LocalExemption[] {
    const x = readJsonState(join(this.dir, 'restored.json'));
    return Array.isArray(x) ? x.filter(isExemption) : [];
  }

  /** Throws when the file cannot be written. */
  saveExemptions(list: readonly LocalExemption[]): void {
    writeJsonState(join(this.dir, 'restored.json'), list);
  }

  /** null when there is no snapshot yet (first start: nothing to compare with). */
  loadPackages(): Map<string, InstalledProgram> | null {
    const x = readJsonState(join(this.dir, 'packages.json'));
    if (!x || typeof x !== 'object' || Array.isArray(x)) return null;
    return new Map(Object.entries(x as Record<string, unknown>).filter((e): e is [string, InstalledProgram] => isProgram(e[1])));
  }

  /** Throws when the file cannot be written. */
  savePackages(now: ReadonlyMap<string, InstalledProgram>): void {
    writeJsonState(join(this.dir, 'packages.json'), Object.fromEntries(now));
  }
}
