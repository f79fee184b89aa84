// Builds the previous release (0.1.0 = commit 0eecc8b, protocol 1, before versioning) so
// test/integration/compat.test.ts runs the REAL previous programs against this tree's:
//   git archive 0eecc8b → .tools/release-0.1.0/src, then one esbuild ESM bundle per program
//   (.tools/release-0.1.0/sekimori-{agent,console}.mjs; node_modules stay external and resolve
//   from this checkout). Cached: nothing is done when both bundles are there. No network.
// Usage: scripts/n24 node scripts/previous-release.mjs   (scripts/setup.sh --test runs it)
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as esbuild from 'esbuild';

export const PREVIOUS_RELEASE = { version: '0.1.0', commit: '0eecc8b' };
const root = resolve(import.meta.dirname, '..');
const out = join(root, '.tools', `release-${PREVIOUS_RELEASE.version}`);
const bundles = ['agent', 'console'].map((n) => join(out, `sekimori-${n}.mjs`));
if (bundles.every((b) => existsSync(b))) process.exit(0);

const src = join(out, 'src');
rmSync(src, { recursive: true, force: true });
mkdirSync(src, { recursive: true });
const tar = execFileSync('git', ['-C', root, 'archive', PREVIOUS_RELEASE.commit, 'agent', 'console', 'protocol', 'package.json'], { maxBuffer: 256 * 1024 * 1024 });
execFileSync('tar', ['-x', '-C', src], { input: tar });
for (const name of ['agent', 'console']) {
  const r = await esbuild.build({
    stdin: { contents: `import { main } from './${name}/cli.ts';\nprocess.exitCode = await main(process.argv.slice(2));`, resolveDir: src, sourcefile: `${name}-${PREVIOUS_RELEASE.version}.ts`, loader: 'ts' },
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'esm',
    packages: 'external',
    outfile: join(out, `sekimori-${name}.mjs`),
    logLevel: 'warning',
    legalComments: 'none',
  });
  if (r.warnings.length > 0) throw new Error(`${name}: esbuild warnings, see above`);
}
// The console serves its web assets from next to its code (console/web/feature.ts STATIC_DIR).
cpSync(join(src, 'console/web/static'), join(out, 'static'), { recursive: true });
writeFileSync(join(out, 'BUILT-FROM'), `${PREVIOUS_RELEASE.commit}\n`);
