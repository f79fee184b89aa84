/**
 * What several benches need: the real CLIs (from dist/, run with this Node) and a real console
 * serving on a loopback port of its own, in a fresh folder.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const root = resolve(import.meta.dirname, '../..');

/** Runs `bin/sekimori-<bin>.js ARGS`; throws with its stderr when it fails. */
export function cli(bin: 'console' | 'agent', args: string[]): string {
  const r = spawnSync(process.execPath, [join(root, `bin/sekimori-${bin}.js`), ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
}

export interface BenchConsole {
  dir: string; // temp folder; the console's data is dir/console
  data: string;
  url: string;
  server: ChildProcess;
  /** Stops the console (SIGTERM) and waits for it. */
  stop(): Promise<void>;
}

/**
 * A new console (`init` + `serve` on 127.0.0.1:0) in a new temp folder named after the bench;
 * `config` is merged into DATA/config.json before it serves (e.g. raised limits).
 */
export async function startBenchConsole(name: string, config: object = {}): Promise<BenchConsole> {
  const dir = mkdtempSync(join(tmpdir(), `sekimori-bench-${name}-`));
  const data = join(dir, 'console');
  cli('console', ['init', '--data', data]);
  const configPath = join(data, 'config.json');
  writeFileSync(configPath, JSON.stringify({ ...(JSON.parse(readFileSync(configPath, 'utf8')) as object), ...config }, null, 2));
  const server = spawn(process.execPath, [join(root, 'bin/sekimori-console.js'), 'serve', '--data', data, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url: string = await new Promise((res, rej) => {
    let out = '';
    server.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /https:\/\/\S+/.exec(out);
      if (m) res(m[0]);
    });
    server.once('exit', () => rej(new Error('console exited')));
  });
  return {
    dir,
    data,
    url,
    server,
    stop: async () => {
      if (server.exitCode !== null || server.signalCode !== null) return; // already stopped
      server.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r));
    },
  };
}
