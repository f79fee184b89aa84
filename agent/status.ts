/** `sekimori-agent status`: asks the running service over its socket, or reads the state folder. */
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { t } from '../protocol/i18n.js';
import { localRequest } from './local-api.js';
import { Outbox } from './report/outbox.js';
import { DEFAULT_STATE_DIR, agentPaths, loadIdentity } from './state.js';

export async function statusCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { state: { type: 'string', default: DEFAULT_STATE_DIR }, json: { type: 'boolean', default: false } } });
  const paths = agentPaths(values.state);
  let status: Record<string, unknown>;
  try {
    const r = await localRequest(paths.socket, 'GET', '/status', undefined, 3000);
    status = r.body as Record<string, unknown>;
  } catch {
    // Not running: report what the state folder says.
    const identity = loadIdentity(paths);
    const outbox = new Outbox(paths.outbox, identity.agentId);
    let policyVersion = 0;
    if (existsSync(paths.policy)) policyVersion = (JSON.parse(readFileSync(paths.policy, 'utf8')) as { highestVersion?: number }).highestVersion ?? 0;
    status = { agentId: identity.agentId, consoleUrl: identity.consoleUrl, running: false, policyVersion, monitorOnly: identity.monitorOnly, outboxDepth: outbox.depth() };
    outbox.close();
  }
  if (values.json) process.stdout.write(JSON.stringify(status, null, 2) + '\n');
  else {
    process.stdout.write(
      `${t('端末ID', 'agent id')}: ${String(status.agentId)}\n` +
        `${t('状態', 'state')}: ${status.running ? t('稼働中', 'running') : t('停止', 'stopped')}\n` +
        `${t('コンソール', 'console')}: ${String(status.consoleUrl)} ${status.consoleReachable === false ? t('(オフライン)', '(offline)') : ''}\n` +
        `${t('ポリシー版', 'policy version')}: ${String(status.policyVersion)}\n` +
        `${t('未送信イベント', 'events not yet delivered')}: ${String(status.outboxDepth)}\n`,
    );
  }
  return status.running ? 0 : 3;
}
