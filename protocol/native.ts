/**
 * Native addons inside the single executables built by scripts/package.sh. Node can only dlopen
 * a file, so inside an executable its embedded files (SEA assets, keyed by their path in the
 * installed tree: `node_modules/…`, `console/web/static/…`) are written once to a private
 * directory and loaded from there. Outside an executable nothing here does anything.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as sea from 'node:sea';

// The Windows executable (installers/windows/build.sh) carries the win32 builds under their own paths.
const WIN = process.platform === 'win32';
const SQLITE_ADDON = `node_modules/better-sqlite3/prebuilds/${WIN ? 'win32' : 'linux'}-x64.node`;
const USB_ADDON = WIN
  ? 'node_modules/@node-usb/usb-win32-x64-msvc/usb.win32-x64-msvc.node'
  : 'node_modules/@node-usb/usb-linux-x64-gnu/usb.linux-x64-gnu.node';

let extracted: string | undefined;

/** The directory holding the executable's embedded files, or undefined when not packaged. */
export function seaDir(): string | undefined {
  if (!sea.isSea()) return undefined;
  if (extracted !== undefined) return extracted;
  // mkdtemp: a fresh 0700 directory with an unguessable name, so nobody can plant code in it
  // (the agent runs as root). Removed again on a normal exit (SIGTERM ends both programs normally).
  const dir = mkdtempSync(join(tmpdir(), 'sekimori-sea-'));
  process.once('exit', () => {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // Windows cannot delete a loaded addon: the service wrapper empties its TMP before each start.
    }
  });
  for (const key of sea.getAssetKeys()) {
    const file = join(dir, key);
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, new Uint8Array(sea.getAsset(key)), { mode: 0o500 });
  }
  // node-usb's loader (node_modules/usb/index.js) takes its addon from here when set.
  if (sea.getAssetKeys().includes(USB_ADDON)) process.env.NAPI_RS_NATIVE_LIBRARY_PATH = join(dir, USB_ADDON);
  extracted = dir;
  return dir;
}

/** Options for `new Database(path, …)`: the embedded better-sqlite3 addon when packaged, else none. */
export function sqliteOptions(): { nativeBinding?: string } {
  const dir = seaDir();
  return dir === undefined ? {} : { nativeBinding: join(dir, SQLITE_ADDON) };
}
