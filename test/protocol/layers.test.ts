/**
 * The import rules, checked by dependency-cruiser with the project's .dependency-cruiser.cjs:
 * protocol/ imports neither program, agent/ and console/ never import each other, no import
 * circle anywhere (type-only imports included). A failure names the rule and the files.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { cruise, type ICruiseResult, type IViolation } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const CONFIG = join(ROOT, '.dependency-cruiser.cjs');
const SOURCE_DIRS = ['protocol', 'agent', 'console', 'bench', 'scripts'];

/** Runs the check on `dirs` below `baseDir` (cruise resolves paths against the working directory). */
async function check(baseDir: string, dirs: string[]): Promise<{ violations: IViolation[]; cruised: number }> {
  const options = await extractDepcruiseOptions(CONFIG);
  const cwd = process.cwd();
  process.chdir(baseDir);
  try {
    const out = await cruise(dirs, { ...options, validate: true, outputType: 'json' });
    const result = (typeof out.output === 'string' ? JSON.parse(out.output) : out.output) as ICruiseResult;
    return { violations: result.summary.violations, cruised: result.summary.totalCruised };
  } finally {
    process.chdir(cwd);
  }
}

/** One line per violation: the rule, then the files (the whole cycle for a circle). */
function describeViolation(v: IViolation): string {
  const files = v.cycle?.length ? [v.from, ...v.cycle.map((c) => c.name)] : [v.from, v.to];
  return `${v.rule.name}: ${files.join(' → ')}`;
}

describe('import rules (dependency-cruiser, .dependency-cruiser.cjs)', () => {
  it('the source tree breaks none', async () => {
    const { violations, cruised } = await check(ROOT, SOURCE_DIRS);
    expect(cruised).toBeGreaterThan(100); // the tree was really read
    expect(violations.map(describeViolation)).toEqual([]);
  });

  // Positive control: a throwaway tree (never the shared checkout) with one file per broken rule.
  const tmp = mkdtempSync(join(tmpdir(), 'sekimori-layers-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const put = (path: string, text: string) => {
    mkdirSync(dirname(join(tmp, path)), { recursive: true });
    writeFileSync(join(tmp, path), text);
  };

  it.each([
    ['protocol-imports-no-program', { 'protocol/wire.ts': "import { x } from '../agent/x.js';\nexport const y = x;\n", 'agent/x.ts': 'export const x = 1;\n' }],
    ['agent-not-console', { 'agent/a.ts': "export { c } from '../console/c.js';\n", 'console/c.ts': 'export const c = 1;\n' }],
    ['console-not-agent', { 'console/c.ts': "import type { A } from '../agent/a.js';\nexport const c: A = 1;\n", 'agent/a.ts': 'export type A = number;\n' }],
    ['console-not-agent', { 'console/c.ts': "export async function f() { return import('../agent/a.js'); }\n", 'agent/a.ts': 'export const a = 1;\n' }],
    ['no-circular', { 'console/p.ts': "import { q } from './q.js';\nexport const p = () => q;\n", 'console/q.ts': "import type { p } from './p.js';\nexport const q = 1 as unknown as typeof p;\n" }],
    ['not-to-unresolvable', { 'console/c.ts': "export { gone } from './gone.js';\n" }],
  ] as const)('a file that breaks %s is caught', async (rule, files) => {
    const dir = mkdtempSync(join(tmp, 'case-'));
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    const { violations } = await check(dir, ['protocol', 'agent', 'console'].filter((d) => Object.keys(files).some((p) => p.startsWith(d + '/'))));
    expect(violations.map((v) => v.rule.name)).toContain(rule);
    expect(violations.map(describeViolation).join('\n')).toMatch(Object.keys(files)[0]!);
  });

  it('an allowed import is not reported', async () => {
    put('ok/protocol/p.ts', 'export const p = 1;\n');
    put('ok/agent/a.ts', "import { p } from '../protocol/p.js';\nexport const a = p;\n");
    put('ok/console/c.ts', "import { p } from '../protocol/p.js';\nexport const c = p;\n");
    const { violations, cruised } = await check(join(tmp, 'ok'), ['protocol', 'agent', 'console']);
    expect(cruised).toBe(3);
    expect(violations).toEqual([]);
  });
});
