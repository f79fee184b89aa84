/**
 * The layering rule: protocol/ imports neither program; agent/ and console/ never import each
 * other (what both need lives in protocol/). Reads every import specifier of the three folders.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const FORBIDDEN: Record<string, string[]> = { protocol: ['agent', 'console'], agent: ['console'], console: ['agent'] };

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name));
}

/** Top folder of every relative import of `file` (static and dynamic). */
function importedTops(file: string, text = readFileSync(file, 'utf8')): string[] {
  const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) => m[1]!);
  return specs.map((s) => relative(ROOT, resolve(dirname(file), s)).split('/')[0]!);
}

describe('layers', () => {
  it('no cross-program import', () => {
    const violations: string[] = [];
    for (const [top, banned] of Object.entries(FORBIDDEN)) {
      for (const f of tsFiles(join(ROOT, top))) {
        for (const t of importedTops(f)) if (banned.includes(t)) violations.push(`${relative(ROOT, f)} → ${t}/`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('the check sees a crossing import (positive control)', () => {
    const file = join(ROOT, 'console/mfa/store.ts');
    expect(importedTops(file, "import { decide } from '../../agent/mfa/decide.js';\nconst m = await import('../../agent/run.js');")).toEqual(['agent', 'agent']);
    expect(importedTops(file)).toContain('protocol');
  });
});
