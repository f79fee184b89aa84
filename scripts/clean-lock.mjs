// Strips funding links from package-lock.json: the lock file may name no host but the npm
// registry (our machines reach nothing else, and auditors read the lock as the supply list).
import { readFileSync, writeFileSync } from 'node:fs';
const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
for (const entry of Object.values(lock.packages ?? {})) delete entry.funding;
writeFileSync(path, JSON.stringify(lock, null, 2) + '\n');
