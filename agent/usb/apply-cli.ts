/**
 * `sekimori-agent apply <申請番号> --reason TEXT [--hours N] [--state DIR | --socket PATH] [--json]`:
 * a member of staff applies for a time-limited exception for a device the notice named. Always
 * asks on the user (unlock) socket, also when run by root: that is where the agent learns from
 * the kernel who is asking; the applicant is never a name given here.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isObject } from '../../protocol/validate.js';
import { localRequest, UNLOCK_SOCKET_ENV, unlockSocketPath } from '../local-api.js';
import { userPipeRequest } from '../local/windows/user-pipe-broker.js';
import { isNamedPipe } from '../os.js';
import { agentPaths, DEFAULT_STATE_DIR } from '../state.js';

/** Where the installed agent listens for users (the unit sets it; a user's shell does not have the variable). */
export const INSTALLED_USER_SOCKET = '/run/sekimori-agent/unlock.sock';

/** $SEKIMORI_UNLOCK_SOCKET when set; else, without --state, the installed agent's (the unit sets the variable for the agent, a user's shell has none); else the state folder's. */
export function defaultSocket(state: string | undefined, env: NodeJS.ProcessEnv = process.env, exists: (p: string) => boolean = existsSync): string {
  if (state === undefined && !env[UNLOCK_SOCKET_ENV] && exists(INSTALLED_USER_SOCKET)) return INSTALLED_USER_SOCKET;
  return unlockSocketPath(agentPaths(state ?? DEFAULT_STATE_DIR).socket, env);
}

const USAGE = 'usage: sekimori-agent apply <申請番号> --reason TEXT [--hours N] [--state DIR | --socket PATH] [--json]';

export async function applyCommand(args: string[]): Promise<number> {
  let parsed: { values: { reason?: string; hours?: string; state?: string; socket?: string; json?: boolean }; positionals: string[] };
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: { reason: { type: 'string' }, hours: { type: 'string' }, state: { type: 'string' }, socket: { type: 'string' }, json: { type: 'boolean', default: false } },
    });
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  const ref = (positionals[0] ?? '').trim().toUpperCase();
  if (!ref || !values.reason || positionals.length !== 1) {
    process.stderr.write(`申請番号と理由を指定してください / give the reference and --reason\n${USAGE}\n`);
    return 2;
  }
  // The agent checks the bounds; a non-number here is sent as such and refused there (one rule).
  const hours = values.hours === undefined ? undefined : /^\d{1,16}$/.test(values.hours) ? Number(values.hours) : values.hours;
  const socket = values.socket ?? defaultSocket(values.state);
  try {
    const body = { ref, reason: values.reason, ...(hours === undefined ? {} : { hours }) };
    // Windows: the broker's user pipe (it names the caller from its token); Linux: the unlock socket.
    const r = isNamedPipe(socket) ? await userPipeRequest(socket, 'POST', '/usb/apply', body, 20_000) : await localRequest(socket, 'POST', '/usb/apply', body, 10_000);
    if (values.json) process.stdout.write(JSON.stringify(r.body) + '\n');
    const msg = isObject(r.body) && typeof r.body.message === 'string' ? r.body.message : `HTTP ${r.status}`;
    if (r.status === 202) {
      if (!values.json) process.stdout.write(`${msg}\n申請番号 / reference: ${ref}\n`);
      return 0;
    }
    if (!values.json) process.stderr.write(msg + '\n');
    return 1;
  } catch (e) {
    if (isNamedPipe(socket)) {
      // No pipe: the agent or its broker is not running; the broker is restarted by the agent.
      process.stderr.write(`申請を受け付けられません。しばらくしてからもう一度お試しください / applications cannot be taken now; try again shortly (${(e as Error).message})\n`);
      return 1;
    }
    process.stderr.write(`エージェントに接続できません / agent unreachable (${(e as Error).message})\n`);
    return 1;
  }
}
