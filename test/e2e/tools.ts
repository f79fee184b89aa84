/**
 * Tier gating: a tier whose tool is missing skips LOUDLY with the install command. Under CI
 * (CI=true) a missing tool is a failure instead, because .ci/run installs every tool.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface ToolCheck {
  ok: boolean;
  missing: string[];
  hint: string;
}

export function haveCommand(cmd: string): boolean {
  if (cmd.includes('/')) return existsSync(cmd);
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Returns whether the tier can run. Call at module top level and pass `!check.ok` to
 * `describe.skipIf`. In CI a missing tool throws, so the tier fails instead of skipping.
 */
export function requireTools(tier: string, commands: string[], hint: string, extra: { missing?: string[] } = {}): ToolCheck {
  const missing = [...commands.filter((c) => !haveCommand(c)), ...(extra.missing ?? [])];
  const check = { ok: missing.length === 0, missing, hint };
  if (!check.ok) {
    const msg = `\n*** TIER SKIPPED: ${tier} — missing: ${missing.join(', ')}\n*** install with: ${hint}\n`;
    if (process.env.CI === 'true') throw new Error(msg + '*** CI must run every tier: .ci/run installs these.');
    process.stderr.write(msg);
  }
  return check;
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}
