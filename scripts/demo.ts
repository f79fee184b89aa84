/**
 * `npm start`: the main job on one machine. Creates (once) a console data folder and a local
 * agent under .data/, starts the console on https://127.0.0.1:8443 and the agent enrolled in
 * monitor mode (it reports what it would block and changes nothing on this machine), and prints
 * where to go, including the privacyIDEA-compatible /validate/check URL for Windows terminals
 * (the main port + 1, e.g. 8444). Ctrl-C stops both.
 *   SEKIMORI_DEMO_DIR (default .data)   SEKIMORI_LISTEN (default 127.0.0.1:8443)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');
const base = resolve(process.env.SEKIMORI_DEMO_DIR ?? join(root, '.data'));
const consoleData = join(base, 'console');
const agentState = join(base, 'agent');
const listen = process.env.SEKIMORI_LISTEN ?? '127.0.0.1:8443';
const bin = (name: string) => join(root, 'bin', `sekimori-${name}.js`);

function run(name: string, args: string[]): string {
  const r = spawnSync(process.execPath, [bin(name), ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sekimori-${name} ${args[0]}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** Everything a process printed so far (each later wait also sees what came before it). */
const seen = new Map<ChildProcess, string>();
function echo(proc: ChildProcess): void {
  proc.stdout?.on('data', (c: Buffer) => {
    seen.set(proc, (seen.get(proc) ?? '') + c.toString());
    process.stdout.write(c);
  });
}

function waitForLine(proc: ChildProcess, re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  return new Promise((res, rej) => {
    let out = seen.get(proc) ?? '';
    const early = re.exec(out);
    if (early) return res(early);
    const timer = setTimeout(() => rej(new Error(`timed out waiting for ${re}: ${out}`)), timeoutMs);
    proc.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      const m = re.exec(out);
      if (m) {
        clearTimeout(timer);
        res(m);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`exited with ${code}`));
    });
  });
}

async function main() {
  if (!existsSync(join(consoleData, 'ca.pem'))) {
    process.stdout.write(run('console', ['init', '--data', consoleData, '--organisation', process.env.SEKIMORI_ORGANISATION ?? 'デモ市']));
  }
  const consoleProc = spawn(process.execPath, [bin('console'), 'serve', '--data', consoleData, '--listen', listen], { stdio: ['ignore', 'pipe', 'inherit'] });
  echo(consoleProc);
  const [, url] = await waitForLine(consoleProc, /(https:\/\/\S+)/, 30_000);
  // The validate port is printed right after the main one; when it could not be opened the console says why on stderr.
  const validateUrl = await waitForLine(consoleProc, /(https:\/\/\S+\/validate\/check)/, 3_000).then(
    (m) => m[1]!,
    () => '(開けませんでした・ログ参照 / not opened, see the log)',
  );
  if (!existsSync(join(agentState, 'identity.json'))) {
    const tok = JSON.parse(run('console', ['enroll-token', '--data', consoleData, '--json'])) as { token: string; caFingerprint: string };
    process.stdout.write(run('agent', ['enroll', '--console', url!, '--token', tok.token, '--ca-fingerprint', tok.caFingerprint, '--state', agentState, '--monitor']));
  }
  const agentProc = spawn(process.execPath, [bin('agent'), 'run', '--state', agentState], { stdio: ['ignore', 'inherit', 'inherit'] });
  const c = `node bin/sekimori-console.js`;
  process.stdout.write(`
================================================================
 関守 Sekimori 管理コンソール / console:  ${url}/
 Windows ログオン (privacyIDEA Credential Provider) / Windows logon:  ${validateUrl}
 初期管理者 / first admin credentials:   ${join(consoleData, 'initial-admin.txt')}
   (ユーザー名・パスワード・TOTPシークレット。認証アプリに登録してください /
    user, password and TOTP secret: add the secret to an authenticator app)
 CA fingerprint (端末登録に必要 / needed to enrol terminals): see above
 ローカル端末エージェント / local agent: ${agentState} (monitor: 遮断せず報告のみ / reports, changes nothing)

 試してみる / try:
   ${c} agents --data ${consoleData}
   ${c} events --data ${consoleData}
   node bin/sekimori-agent.js status --state ${agentState}
   ${c} enroll-token --data ${consoleData} --ttl 8h --uses 100   (端末100台分 / for 100 terminals)
 停止 / stop: Ctrl-C
================================================================
`);
  const stop = () => {
    agentProc.kill('SIGTERM');
    consoleProc.kill('SIGTERM');
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await Promise.all([new Promise((r) => agentProc.once('exit', r)), new Promise((r) => consoleProc.once('exit', r))]);
}

main().catch((e: Error) => {
  process.stderr.write(`sekimori: ${e.message}\n`);
  process.exit(1);
});
