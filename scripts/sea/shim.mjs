// Injected into each bundle (esbuild `inject`): stands in for what a CommonJS bundle inside an
// executable lacks.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { seaDir } from '../../dist/protocol/native.js';

// There is no import.meta in CommonJS: scripts/sea/bundle.mjs rewrites `import.meta.url|dirname|
// filename` in every module into `__seaImportMeta("<that module's path in the installed tree>")`,
// which points into the directory holding the executable's embedded files, so paths relative to
// a module (console/web/static/, node_modules/usb/index.js) resolve to those files.
export function __seaImportMeta(rel) {
  const filename = join(seaDir() ?? dirname(process.execPath), rel);
  return { url: pathToFileURL(filename).href, filename, dirname: dirname(filename) };
}

// The executable's own `require` loads built-in modules only. better-sqlite3 loads a
// `nativeBinding` path with this bundler hook when it is defined, so it gets a full require.
export const __non_webpack_require__ = createRequire(process.execPath);
