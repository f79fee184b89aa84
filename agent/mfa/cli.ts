/**
 * `sekimori-agent mfa-verify --user NAME [--state DIR | --socket PATH]` — for scripts: reads the
 * code from the first line of stdin, asks the agent, exits 0 on accept and 1 on anything else
 * (including an unreachable agent: fail closed). Run by root it asks on the root-only socket; run
 * by anyone else, on the unlock socket, where only the caller's own account can be verified.
 */
import { parseArgs } from 'node:util';
import { isValidMfaUser } from '../../protocol/policy-mfa.js';
import { isObject } from '../../protocol/validate.js';
import { localRequest, unlockSocketPath } from '../local-api.js';
import { agentPaths, DEFAULT_STATE_DIR } from '../state.js';

async function readFirstLine(maxBytes = 256): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of process.stdin as AsyncIterable<Buffer>) {
    chunks.push(c);
    size += c.length;
    if (size > maxBytes || c.includes(0x0a)) break;
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text.split(/\r?\n/)[0] ?? '';
}

export async function mfaVerifyCommand(args: string[]): Promise<number> {
  let values: { user?: string; state?: string; socket?: string; json?: boolean };
  try {
    values = parseArgs({
      args,
      options: { user: { type: 'string' }, state: { type: 'string', default: DEFAULT_STATE_DIR }, socket: { type: 'string' }, json: { type: 'boolean', default: false } },
    }).values;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\nusage: sekimori-agent mfa-verify --user NAME [--state DIR | --socket PATH] < code\n`);
    return 2;
  }
  if (!isValidMfaUser(values.user)) {
    process.stderr.write('ユーザー名が不正です / invalid or missing --user\n');
    return 1;
  }
  const rootSocket = agentPaths(values.state ?? DEFAULT_STATE_DIR).socket;
  const asRoot = typeof process.geteuid !== 'function' || process.geteuid() === 0;
  const socket = values.socket ?? (asRoot ? rootSocket : unlockSocketPath(rootSocket));
  const code = (await readFirstLine()).trim();
  try {
    const r = await localRequest(socket, 'POST', '/mfa/verify', { user: values.user, code, service: 'sekimori-agent mfa-verify' }, 5_000);
    const ok = r.status === 200 && isObject(r.body) && r.body.result === 'accept';
    if (values.json) process.stdout.write(JSON.stringify(r.body) + '\n');
    else process.stderr.write((isObject(r.body) && typeof r.body.message === 'string' ? r.body.message : `HTTP ${r.status}`) + '\n');
    return ok ? 0 : 1;
  } catch (e) {
    process.stderr.write(`認証サービスに接続できません / agent unreachable (${(e as Error).message})\n`);
    return 1;
  }
}
