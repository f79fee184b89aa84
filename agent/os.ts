import { readFileSync } from 'node:fs';
import { release, type } from 'node:os';

/** "Debian GNU/Linux 12 (bookworm) / Linux 6.1.0" — shown on the console's terminal page. */
export function osDescription(): string {
  try {
    const m = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'));
    if (m) return `${m[1]} / ${type()} ${release()}`;
  } catch {
    // not Linux, or no os-release
  }
  return `${type()} ${release()}`;
}
