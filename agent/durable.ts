/**
 * The agent's state files, written through protocol/durable-file.ts (temp file, fsync, rename, fsync
 * of the folder). No imports from the rest of the agent, so platform code can use it too.
 */
import { readFileSync } from 'node:fs';
import { writeFileDurably } from '../protocol/durable-file.js';

export { writeFileDurably };

/**
 * Reads a JSON state file written by writeFileDurably. Missing, unreadable or malformed → undefined
 * (the caller falls back to its fail-closed default).
 */
export function readJsonState(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/** JSON through writeFileDurably (0600: root/SYSTEM only). Throws when it cannot be written. */
export function writeJsonState(path: string, value: unknown): void {
  writeFileDurably(path, JSON.stringify(value));
}
