/**
 * bench/agent-footprint: a real enrolled agent with the default policy and every capability,
 * idle, measured from /proc: resident memory and CPU share over the sampling period.
 *   npm run build && scripts/n24 node dist/bench/agent-footprint.js [--seconds 60] [--policy FILE] [--isolate] [--sea dist/sea/sekimori-agent]
 * --policy publishes FILE (a body as `sekimori-console policy set --file` takes) before the agent
 * enrols, to attribute costs (e.g. {"software": {"packages": {"adminDir": ""}}} turns dpkg trust off).
 * --isolate (root) runs the agent as an idle terminal would see itself on a shared build machine:
 * in its own PID namespace (its /proc scan sees only its own processes) with empty tmpfs over the
 * user-writable places it watches (/tmp, /var/tmp, /dev/shm, /home, /root, /run/user), so other
 * people's compilers and test runs are not counted as the agent's idle cost. The system folders
 * (/usr, /opt, dpkg's database) stay the machine's own.
 * Before the agent starts, its executable is dropped from the page cache (GNU dd iflag=nocache), so
 * its code is paged in as after a reboot: a file just written (`npm run package`, or dpkg right
 * after installing) sits in the page cache in large pieces that are mapped whole, which read ≈ 15
 * MB more RSS for the same code (measured 105 vs 88 MB, packaged agent). --warm skips that.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, readlinkSync, rmSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { cli, root, startBenchConsole } from './console-process.js';
const { values } = parseArgs({ options: { seconds: { type: 'string', default: '60' }, warmup: { type: 'string', default: '10' }, policy: { type: 'string' }, isolate: { type: 'boolean', default: false }, sea: { type: 'string' }, warm: { type: 'boolean', default: false } } });
const TICKS = 100; // USER_HZ on Linux

function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}
function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
}
/** RSS split: what the Node binary's own code pages take, and memory private to this process. */
function rssParts(pid: number): { binaryKb: number; privateKb: number } {
  let binaryKb = 0;
  let current = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s+(.*)$/.exec(line);
    if (head) current = head[1] ?? '';
    else if (line.startsWith('Rss:') && current === agentExe) binaryKb += Number(line.split(/\s+/)[1]);
  }
  const privateKb = Number(/Private_Dirty:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? NaN);
  return { binaryKb, privateKb };
}

/** Inside the new namespaces: the state folder moves to /run (its /tmp path is about to be covered), then the watched user places become empty tmpfs. */
const ISOLATE = [
  'set -e',
  'state="$1"; shift',
  'mkdir -p /run/sekimori-footprint && mount --bind "$state" /run/sekimori-footprint',
  'for d in /tmp /var/tmp /dev/shm /home /root /run/user; do [ -d "$d" ] && mount -t tmpfs -o size=64m none "$d"; done',
  'exec "$@" /run/sekimori-footprint',
].join('\n');

/** The agent's host pid: the first process below `pid` running this Node (unshare forks once, then sh execs node). */
function nodeBelow(pid: number): number {
  for (let depth = 0; depth < 4; depth++) {
    if (readlinkSync(`/proc/${pid}/exe`) === agentExe) return pid; // (node names its thread "MainThread")
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').filter(Boolean);
    if (!kids.length) break;
    pid = Number(kids[0]);
  }
  throw new Error('agent process not found below unshare');
}

/** --sea: the packaged single executable (what terminals run) instead of dist/ under this Node. */
const sea = values.sea ? resolve(values.sea) : null;
const agentExe = sea ?? process.execPath;

async function main() {
  const con = await startBenchConsole('footprint');
  const { dir, data, url } = con;
  try {
    if (values.policy) cli('console', ['policy', 'set', '--data', data, '--file', values.policy]);
    const tok = JSON.parse(cli('console', ['enroll-token', '--data', data, '--json'])) as { token: string; caFingerprint: string };
    const state = join(dir, 'agent');
    const enroll = ['enroll', '--console', url, '--token', tok.token, '--ca-fingerprint', tok.caFingerprint, '--state', state, '--monitor'];
    if (sea) {
      const r = spawnSync(sea, enroll, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${sea} enroll: ${r.stderr}`);
    } else cli('agent', enroll);
    // The Node flags the packaged agent carries (scripts/sea/bundle.mjs bakes them in; the SEA has them).
    const flags = JSON.parse(readFileSync(join(root, 'agent/runtime-flags.json'), 'utf8')) as string[];
    // The environment the systemd unit gives the service (installers/linux/systemd/sekimori-agent.service).
    const unitEnv = Object.fromEntries(
      [...readFileSync(join(root, 'installers/linux/systemd/sekimori-agent.service'), 'utf8').matchAll(/^Environment=(MALLOC_\w+)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!]),
    );
    const env = { ...process.env, ...unitEnv };
    const agentCmd = sea ? [sea, 'run', '--state'] : [process.execPath, ...flags, join(root, 'bin/sekimori-agent.js'), 'run', '--state'];
    if (!values.warm) spawnSync('dd', [`if=${agentExe}`, 'iflag=nocache', 'count=0', 'status=none']); // (pages mapped by running processes stay)
    const agent = values.isolate
      ? spawn('unshare', ['--pid', '--fork', '--kill-child', '--mount-proc', '--mount', '--propagation', 'private', 'sh', '-c', ISOLATE, 'isolate', state, ...agentCmd], { stdio: ['ignore', 'ignore', 'inherit'], env })
      : spawn(agentCmd[0]!, [...agentCmd.slice(1), state], { stdio: ['ignore', 'ignore', 'inherit'], env });
    await new Promise((r) => setTimeout(r, Number(values.warmup) * 1000));
    const pid = values.isolate ? nodeBelow(agent.pid!) : agent.pid!;
    const c0 = cpuTicks(pid);
    const t0 = Date.now();
    let peak = 0;
    const end = t0 + Number(values.seconds) * 1000;
    while (Date.now() < end) {
      peak = Math.max(peak, rssKb(pid));
      await new Promise((r) => setTimeout(r, 1000));
    }
    const cpuSeconds = (cpuTicks(pid) - c0) / TICKS;
    const wall = (Date.now() - t0) / 1000;
    console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, node ${process.version}, agent ${sea ? `${sea} (packaged)` : 'dist/'} flags: ${flags.join(' ')}, env ${Object.entries(unitEnv).map(([k, v]) => `${k}=${v}`).join(' ') || '-'}${values.policy ? `, policy ${values.policy}` : ''}${values.isolate ? ', isolated (own PID namespace, empty tmpfs over /tmp /var/tmp /dev/shm /home /root /run/user)' : ''}${values.warm ? ', executable left in the page cache' : ', executable paged in from disk'}`);
    console.log(`agent idle over ${wall.toFixed(0)} s (after ${values.warmup} s warm-up): RSS now ${(rssKb(pid) / 1024).toFixed(1)} MB, peak ${(peak / 1024).toFixed(1)} MB (target ≤ 80 MB)`);
    const parts = rssParts(pid);
    console.log(`  of which the Node binary's code pages ${(parts.binaryKb / 1024).toFixed(1)} MB (shared, file-backed); private memory ${(parts.privateKb / 1024).toFixed(1)} MB`);
    console.log(`CPU ${((cpuSeconds / wall) * 100).toFixed(2)} % of one core (target ≤ 0.5 %)`);
    process.kill(pid, 'SIGTERM'); // the node process itself (with --isolate, agent is unshare above it)
    await new Promise((r) => agent.once('exit', r));
  } finally {
    await con.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
