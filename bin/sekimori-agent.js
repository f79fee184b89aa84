#!/usr/bin/env node
// Entry point of the `sekimori-agent` command. Built code lives in dist/ (`npm run build`).
// Under an older system Node, re-run with the Node 24 that scripts/node24.sh fetched into .tools/.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const major = Number(process.versions.node.split('.')[0]);
const node24 = fileURLToPath(new URL('../.tools/node/bin/node', import.meta.url));
if (major < 24 && existsSync(node24)) {
  const r = spawnSync(node24, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
const { main } = await import('../dist/agent/cli.js');
process.exitCode = await main(process.argv.slice(2));
