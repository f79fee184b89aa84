// One CommonJS bundle per program from the built tree (dist/), plus its SEA config with the
// files Node cannot take from a bundle (native addons, the console's static files) as assets.
// Usage: node scripts/sea/bundle.mjs OUTDIR   → OUTDIR/{console,agent}.{cjs,sea.json}
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import * as esbuild from 'esbuild';

const root = resolve(import.meta.dirname, '../..');
const dist = join(root, 'dist');
const out = resolve(process.argv[2] ?? join(dist, 'sea', 'build'));

const staticDir = 'console/web/static';
const common = ['node_modules/better-sqlite3/prebuilds/linux-x64.node'];
const programs = {
  console: [...common, ...readdirSync(join(dist, staticDir)).map((f) => `${staticDir}/${f}`)],
  // node-usb's loader is reached through createRequire(import.meta.url), which esbuild cannot
  // follow, so it ships as a file next to its addon.
  agent: [...common, 'node_modules/usb/index.js', 'node_modules/@node-usb/usb-linux-x64-gnu/usb.linux-x64-gnu.node'],
};

/** Where a module sits in the installed tree: dist/x → x, node_modules/y → node_modules/y. */
function treePath(file) {
  return file.startsWith(dist + '/') ? relative(dist, file) : relative(root, file);
}

const importMeta = {
  name: 'import-meta',
  setup(build) {
    build.onLoad({ filter: /\.(m?js|cjs)$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta')) return undefined;
      const call = `__seaImportMeta(${JSON.stringify(treePath(args.path))})`;
      return { contents: text.replace(/\bimport\.meta\.(url|dirname|filename)\b/g, `${call}.$1`), loader: 'js', resolveDir: dirname(args.path) };
    });
  },
};

/** Path of an asset in the build tree for its key (static files live under dist/). */
function assetSource(key) {
  return key.startsWith('node_modules/') ? join(root, key) : join(dist, key);
}

/** What every bundle here is: one CommonJS file for Node 24, warnings printed (and refused below). */
const cjsBundle = { bundle: true, platform: 'node', target: 'node24', format: 'cjs', logLevel: 'warning', legalComments: 'none' };

// The console's batch-check worker thread (console/backbone/batch-checker.ts): its own bundle,
// shipped as the asset under the worker's dist path; the executable runs it from that code.
const WORKER_KEY = 'console/backbone/batch-check-worker.js';
const workerBundle = join(out, 'console-batch-check-worker.cjs');
const worker = await esbuild.build({ ...cjsBundle, entryPoints: [join(dist, WORKER_KEY)], outfile: workerBundle });
if (worker.warnings.length > 0) throw new Error('batch-check worker: esbuild warnings, see above');
const builtAssets = { console: { [WORKER_KEY]: workerBundle }, agent: {} };

for (const [name, assets] of Object.entries(programs)) {
  const bundle = join(out, `${name}.cjs`);
  const result = await esbuild.build({
    stdin: {
      contents: `import { main } from './dist/${name}/cli.js';\nmain(process.argv.slice(2)).then((code) => { process.exitCode = code; });`,
      resolveDir: root,
      sourcefile: `sekimori-${name}-sea.js`,
    },
    ...cjsBundle,
    outfile: bundle,
    inject: [join(root, 'scripts/sea/shim.mjs')],
    plugins: [importMeta],
    // The agent idles on every terminal and Node holds its whole source as a string: without
    // comments and indentation it is 1.6 instead of 2.1 MB, ≈ 3 MB less RSS (bench/agent-footprint).
    // Names stay, so stack traces read.
    ...(name === 'agent' ? { minifyWhitespace: true } : {}),
  });
  // A warning here (an unresolved import, a leftover import.meta) would be a runtime failure.
  if (result.warnings.length > 0) throw new Error(`${name}: esbuild warnings, see above`);
  const config = {
    main: bundle,
    output: join(out, `${name}.blob`),
    disableExperimentalSEAWarning: true,
    // The agent idles on every terminal: only V8's baseline compiler (no Maglev/TurboFan code) and
    // a small young generation keep it within its memory budget (bench/agent-footprint).
    ...(name === 'agent' ? { execArgv: JSON.parse(readFileSync(join(root, 'agent/runtime-flags.json'), 'utf8')) } : {}),
    assets: { ...Object.fromEntries(assets.map((key) => [key, assetSource(key)])), ...builtAssets[name] },
  };
  writeFileSync(join(out, `${name}.sea.json`), JSON.stringify(config, null, 2) + '\n');
}
