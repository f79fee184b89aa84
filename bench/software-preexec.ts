/**
 * bench/software-preexec: what the pre-exec helper (fanotify FAN_OPEN_EXEC_PERM) costs and buys.
 *   npm run build && scripts/n24 node dist/bench/software-preexec.js [--rounds 3] [--execs 3000] [--unknown 40] [--exposure 20]
 * Root on Linux. Everything runs on a tmpfs mounted in a private mount namespace (unshare -m) that
 * only this benchmark's processes enter: the helper marks only that tmpfs, so no process of this
 * machine is judged. The software capability runs in this process with a recording context (as in
 * bench/software), with the real helper built from source.
 * Figures, each measured with and without the helper in the same run (rounds interleaved):
 *  1. exec latency added for a trusted (cached) file: execv() of an executable in no binary format
 *     returns ENOEXEC right after the exec open, the point where the kernel asks the helper, so the
 *     timed call is the exec open itself (bench/software-exec-timer.c -e); plus full fork+exec+exit.
 *     Target ≤ 50 µs added at p50.
 *  2. time to a verdict for an unknown file (cache miss: the agent hashes and judges it).
 *  3. exposure window in enforce mode: how many unauthorized programs ran any instruction, and for
 *     how long (spawn → exit) before the /proc scan killed them. Target 0 with the helper.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConsoleUnreachableError, type AgentContext, type NewEvent } from '../agent/capability.js';
import { SoftwareCapability } from '../agent/software/index.js';
import { PreExecLine } from '../agent/software/linux/preexec/line.js';
import { defaultSeverity, type SekimoriEvent } from '../protocol/events.js';
import { builtinPolicy, type PolicyDocument } from '../protocol/policy.js';
import { defaultSoftwarePolicy, type SoftwarePolicy } from '../protocol/policy-software.js';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, execs: { type: 'string', default: '3000' }, unknown: { type: 'string', default: '40' }, exposure: { type: 'string', default: '20' } },
});
const ROUNDS = Number(values.rounds);
const EXECS = Number(values.execs);
const UNKNOWN = Number(values.unknown);
const EXPOSURE = Number(values.exposure);
const ROOT = resolve(import.meta.dirname, '../..');

const work = mkdtempSync(join(tmpdir(), 'sekimori-bench-preexec-'));
const events: NewEvent[] = [];
const ctx: AgentContext = {
  agentId: 'bench',
  stateDir: join(work, 'state'),
  monitorOnly: false,
  emit(e: NewEvent): SekimoriEvent {
    events.push(e);
    return { id: randomUUID(), agentId: 'bench', seq: events.length, ts: new Date().toISOString(), type: e.type, severity: e.severity ?? defaultSeverity(e.type), user: e.user ?? null, data: e.data, prevHash: '', hash: '' };
  },
  log: () => undefined,
  console: { request: () => Promise.reject(new ConsoleUnreachableError('bench: no console')), consoleNow: () => new Date(), reachable: () => false },
  local: { route: () => undefined, socketPath: join(work, 'state', 'agent.sock') },
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}
const us = (x: number) => (Number.isNaN(x) ? 'n/a' : `${x.toFixed(1)} µs`);
const ms = (x: number) => (Number.isNaN(x) ? 'n/a' : `${x.toFixed(1)} ms`);
async function until(what: string, f: () => boolean, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!f()) {
    if (Date.now() > end) throw new Error(`bench: timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function main(): Promise<void> {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) throw new Error('bench/software-preexec needs root on Linux (fanotify permission events)');
  mkdirSync(ctx.stateDir, { recursive: true });
  // The helper and the timer, built from source.
  const helper = join(work, 'sekimori-exec-guard');
  execFileSync('make', ['-s', '-C', join(ROOT, 'installers/linux/exec-guard'), `SRC=${join(ROOT, 'agent/software/linux/preexec/sekimori-exec-guard.c')}`, `OUT=${helper}`], { stdio: 'inherit' });
  const timer = join(work, 'exec-timer');
  execFileSync('gcc', ['-O2', '-o', timer, join(ROOT, 'bench/software-exec-timer.c')], { stdio: 'inherit' });

  // The stage: a tmpfs in a private mount namespace held by a sleeping process.
  const mnt = join(work, 'mnt');
  mkdirSync(mnt);
  const holder = spawn('unshare', ['-m', '--propagation', 'private', '--', 'sh', '-c', 'mount -t tmpfs -o size=256m sekimori-bench "$0" && echo mounted && exec sleep 3600', mnt], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((res, rej) => {
    holder.stdout!.on('data', (b: Buffer) => b.toString().includes('mounted') && res());
    holder.once('exit', (c) => rej(new Error(`namespace holder exited ${c}`)));
  });
  const prefix = ['nsenter', '-t', String(holder.pid), '-m', '--'];
  const out = (p: string) => `/proc/${holder.pid}/root${p}`;
  // Never spawnSync here: the helper's questions are answered by this process's event loop.
  const inNs = (cmd: string[], timeoutMs = 600_000) =>
    new Promise<{ stdout: string }>((res) => {
      const c = spawn(prefix[0]!, [...prefix.slice(1), ...cmd], { stdio: ['ignore', 'pipe', 'ignore'] });
      let stdout = '';
      c.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
      const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
      c.once('close', () => {
        clearTimeout(t);
        res({ stdout });
      });
    });
  try {
    const put = (p: string, from: string | Buffer) => {
      if (typeof from === 'string') copyFileSync(from, out(p));
      else writeFileSync(out(p), from);
      chmodSync(out(p), 0o755);
    };
    const noFormat = join(mnt, 'no-format');
    put(noFormat, Buffer.from('not a program\n'));
    const trueBin = join(mnt, 'true');
    put(trueBin, '/usr/bin/true');
    mkdirSync(out(join(mnt, 'allowed')));
    mkdirSync(out(join(mnt, 'denied')));
    const sha = (p: string) => createHash('sha256').update(readFileSync(out(p))).digest('hex');

    let version = 1;
    const policy = (enabled: boolean): PolicyDocument => ({
      ...builtinPolicy(),
      version: version++,
      software: {
        ...defaultSoftwarePolicy(),
        mode: 'enforce',
        locations: [mnt],
        rules: [
          { kind: 'sha256', action: 'allow', sha256: sha(noFormat) },
          { kind: 'sha256', action: 'allow', sha256: sha(trueBin) },
          { kind: 'path', action: 'allow', prefix: join(mnt, 'allowed') },
        ],
        packages: { adminDir: '', root: '/' },
        quarantine: { enabled: false, dir: '' },
        scanIntervalMs: 250,
        syncSeconds: 3600,
        preExec: { enabled, fallback: 'deny', timeoutMs: 2000, marks: [mnt] },
      } satisfies SoftwarePolicy,
    });
    const cap = new SoftwareCapability();
    /** The capability's pre-exec line: Linux's (this tier runs only there). */
    const line = (): PreExecLine => {
      if (!(cap.preExec instanceof PreExecLine)) throw new Error('no Linux pre-exec line');
      return cap.preExec;
    };
    // SEKIMORI_BENCH_HELPER_PREFIX (e.g. "chrt -f 1"): try the helper under another scheduling class.
    const extra = (process.env.SEKIMORI_BENCH_HELPER_PREFIX ?? '').split(' ').filter(Boolean);
    line().setEnv({ helper: () => helper, prefix: [...prefix, ...extra] });
    await cap.start(ctx, policy(false));
    const helperOn = async (on: boolean) => {
      await cap.applyPolicy(policy(on));
      await until(on ? 'helper READY' : 'helper stopped', () => line().status().running === on);
    };
    const timed = async (args: string[]) =>
      (await inNs([timer, ...args])).stdout
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const [ns, code] = l.split(' ');
          return { us: Number(ns) / 1000, code: Number(code) };
        });

    console.log(`bench/software-preexec — ${ROUNDS} rounds × ${EXECS} execs per condition, ${UNKNOWN} unknown files, ${EXPOSURE} unauthorized programs per condition`);
    console.log(`kernel ${execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()}, load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);

    // 1. Cached exec latency, rounds interleaved so drift in the machine's load hits both alike.
    const open = { off: [] as number[], on: [] as number[] };
    const full = { off: [] as number[], on: [] as number[] };
    for (let r = 0; r < ROUNDS; r++) {
      for (const on of [false, true]) {
        await helperOn(on);
        await timed(['-e', '50', noFormat]); // warm: the first one is a question, the rest cache hits
        await timed(['20', trueBin]);
        const o = await timed(['-e', String(EXECS), noFormat]);
        if (o.some((x) => x.code !== 8)) throw new Error(`bench: exec of ${noFormat} did not fail with ENOEXEC: ${o.find((x) => x.code !== 8)?.code}`);
        open[on ? 'on' : 'off'].push(...o.map((x) => x.us));
        const f = await timed([String(Math.max(50, Math.floor(EXECS / 10))), trueBin]);
        full[on ? 'on' : 'off'].push(...f.map((x) => x.us));
      }
    }
    const hs = await line().helperStats();

    // 2. Unknown files: each a new inode (cache miss), judged by the agent (hash + decide).
    for (let i = 0; i < UNKNOWN; i++) put(join(mnt, 'allowed', `u-${i}`), Buffer.from(`#!/bin/true\n# unknown ${i} ${randomUUID()}\n`));
    const unknownRuns: number[] = [];
    const answered0 = line().status().stats!.answerMs.length;
    for (let i = 0; i < UNKNOWN; i++) unknownRuns.push(...(await timed(['1', join(mnt, 'allowed', `u-${i}`)])).map((x) => x.us / 1000));
    const judgeMs = line().status().stats!.answerMs.slice(answered0);
    // The same kind of script once cached: what the unknown runs cost without the question.
    put(join(mnt, 'allowed', 'known'), Buffer.from('#!/bin/true\n# known\n'));
    await timed(['1', join(mnt, 'allowed', 'known')]);
    const scriptBase = (await timed(['20', join(mnt, 'allowed', 'known')])).map((x) => x.us / 1000);

    // 3. Exposure: unauthorized programs (copies of sleep, each a new file) started in enforce mode.
    const exposure = async (on: boolean) => {
      await helperOn(on);
      const ran: number[] = [];
      let refused = 0;
      let started = 0;
      for (let i = 0; i < EXPOSURE; i++) {
        const p = join(mnt, 'denied', `s-${on ? 'on' : 'off'}-${i}`);
        put(p, '/usr/bin/sleep');
        writeFileSync(out(p), Buffer.concat([readFileSync(out(p)), Buffer.from(randomUUID())])); // unique content
        chmodSync(out(p), 0o755);
        await sleep(100);
        const t0 = performance.now();
        const r = await inNs(['sh', '-c', '"$0" 30; echo "rc=$?"', p], 60_000);
        const dt = performance.now() - t0;
        const rc = Number(/rc=(\d+)/.exec(r.stdout)?.[1] ?? -1);
        if (rc === 126) refused++;
        else {
          started++;
          ran.push(dt);
        }
        await sleep(50 + Math.random() * 200); // spread over the scan period
      }
      return { refused, started, ran };
    };
    const expOn = await exposure(true);
    const expOff = await exposure(false);
    await cap.stop();

    const d50 = pct(open.on, 50) - pct(open.off, 50);
    const d99 = pct(open.on, 99) - pct(open.off, 99);
    console.log('');
    console.log('| figure | no helper | helper | added | target |');
    console.log('|---|---|---|---|---|');
    console.log(`| exec open of a trusted (cached) file, p50 (n=${open.off.length}/${open.on.length}) | ${us(pct(open.off, 50))} | ${us(pct(open.on, 50))} | ${us(d50)} | ≤ 50 µs |`);
    console.log(`| exec open of a trusted (cached) file, p99 | ${us(pct(open.off, 99))} | ${us(pct(open.on, 99))} | ${us(d99)} | |`);
    console.log(`| fork + exec + exit of /usr/bin/true (copy), p50 (n=${full.off.length}/${full.on.length}) | ${us(pct(full.off, 50))} | ${us(pct(full.on, 50))} | ${us(pct(full.on, 50) - pct(full.off, 50))} | |`);
    console.log(`| fork + exec + exit, p99 | ${us(pct(full.off, 99))} | ${us(pct(full.on, 99))} | ${us(pct(full.on, 99) - pct(full.off, 99))} | |`);
    console.log('');
    console.log('| figure | p50 | p99 | max | note |');
    console.log('|---|---|---|---|---|');
    console.log(`| unknown file: exec round trip incl. the agent's verdict (n=${unknownRuns.length}) | ${ms(pct(unknownRuns, 50))} | ${ms(pct(unknownRuns, 99))} | ${ms(Math.max(...unknownRuns))} | same script once cached: p50 ${ms(pct(scriptBase, 50))} |`);
    console.log(`| agent: question → answer written (hash + decide, n=${judgeMs.length}) | ${ms(pct(judgeMs, 50))} | ${ms(pct(judgeMs, 99))} | ${ms(Math.max(...judgeMs))} | timeout 2000 ms, fallback deny |`);
    console.log('');
    console.log('| exposure in enforce mode | refused before start | ran | ran for p50 / max (spawn → killed) | target |');
    console.log('|---|---|---|---|---|');
    console.log(`| with the helper (n=${EXPOSURE}) | ${expOn.refused} | ${expOn.started} | ${expOn.ran.length ? `${ms(pct(expOn.ran, 50))} / ${ms(Math.max(...expOn.ran))}` : '—'} | 0 ran |`);
    console.log(`| /proc scan only (n=${EXPOSURE}) | ${expOff.refused} | ${expOff.started} | ${ms(pct(expOff.ran, 50))} / ${ms(Math.max(...expOff.ran))} | |`);
    if (hs) console.log(`\nhelper counters after the latency rounds: ${hs.hits} cache hits, ${hs.misses} misses, ${hs.fallbacks} fallbacks, ${hs.dropped} dropped lines, ${hs.cached} cached identities`);
    const fb = events.filter((e) => e.type === 'software.preexec_fallback');
    console.log(`fallback events: ${fb.length}; exec_denied events: ${events.filter((e) => e.type === 'software.exec_denied').length}; software.killed: ${events.filter((e) => e.type === 'software.killed').length}`);
  } finally {
    holder.kill('SIGKILL');
  }
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => rmSync(work, { recursive: true, force: true }));
