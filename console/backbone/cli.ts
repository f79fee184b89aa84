/** CLI of the backbone: enrollment tokens, terminals, revocation, events, policy. */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parsePolicyBody } from '../../protocol/policy.js';
import { t } from '../../protocol/i18n.js';
import { safeText } from '../../protocol/text.js';
import { parseDuration, withConsole, type CliCommand } from '../module.js';
import { PolicyValidationError, type OpenConsole } from '../core/open-console.js';
import { queryEvents } from '../core/events.js';
import { createEnrollToken, listAgents, revokeTerminal } from './store.js';

const dataOpt = { data: { type: 'string' as const, default: process.env.SEKIMORI_CONSOLE_DATA ?? '/var/lib/sekimori-console' } };

function out(x: unknown): void {
  process.stdout.write(JSON.stringify(x, null, 2) + '\n');
}

function duration(s: string): number {
  const ms = parseDuration(s);
  if (ms === null || ms <= 0) throw new Error(t(`期間の形式が不正です: ${s}(例: 30m, 1h, 7d)`, `invalid duration ${s} (e.g. 30m, 1h, 7d)`));
  return ms;
}

export const backboneCommands: Record<string, CliCommand> = {
  'enroll-token': {
    summary: 'enroll-token --data DIR [--ttl 1h] [--uses 1] [--json]   端末登録用のワンタイムトークン / one-time enrollment token',
    run(args, open) {
      const { values } = parseArgs({ args, options: { ...dataOpt, ttl: { type: 'string', default: '1h' }, uses: { type: 'string', default: '1' }, json: { type: 'boolean', default: false } } });
      const uses = Number(values.uses);
      if (!Number.isSafeInteger(uses) || uses < 1 || uses > 10_000) throw new Error('--uses: 1..10000');
      return withConsole(open, (ctx) => {
        const { token, expiresAt } = createEnrollToken(ctx, duration(values.ttl), uses, 'cli');
        if (values.json) out({ token, caFingerprint: (ctx as OpenConsole).caFingerprint, expiresAt });
        else {
          process.stdout.write(
            `${t('登録トークン', 'enrollment token')}: ${token}\n${t('有効期限', 'expires')}: ${expiresAt}  (${t('使用回数', 'uses')}: ${uses})\n` +
              `CA fingerprint: ${(ctx as OpenConsole).caFingerprint}\n\n` +
              `sekimori-agent enroll --console https://<console>:8443 --token ${token} --ca-fingerprint ${(ctx as OpenConsole).caFingerprint}\n`,
          );
        }
        return 0;
      });
    },
  },
  agents: {
    summary: 'agents --data DIR [--json]   端末一覧 / terminals',
    run(args, open) {
      const { values } = parseArgs({ args, options: { ...dataOpt, json: { type: 'boolean', default: false } } });
      return withConsole(open, (ctx) => {
        const list = listAgents(ctx);
        if (values.json) out(list);
        else
          for (const a of list)
            process.stdout.write(`${a.id}  ${safeText(a.hostname, 40).padEnd(20)} ${a.status.padEnd(8)} ${a.lastSeen ?? '-'}  policy v${a.policyVersion}\n`);
        return 0;
      });
    },
  },
  revoke: {
    summary: 'revoke --data DIR AGENT_ID   端末の証明書を失効 / revoke a terminal',
    run(args, open) {
      const { positionals } = parseArgs({ args, options: dataOpt, allowPositionals: true });
      const id = positionals[0];
      if (!id) throw new Error('usage: revoke --data DIR AGENT_ID');
      return withConsole(open, (ctx) => {
        if (!revokeTerminal(ctx, id, 'cli')) {
          process.stderr.write(t(`該当する有効な端末がありません: ${id}\n`, `no active terminal ${id}\n`));
          return 1;
        }
        process.stdout.write(t(`失効しました: ${id}\n`, `revoked ${id}\n`));
        return 0;
      });
    },
  },
  events: {
    summary: 'events --data DIR [--json] [--type T] [--agent ID] [--user U] [--since ISO] [--until ISO] [--limit N]   操作ログ / events',
    run(args, open) {
      const { values } = parseArgs({
        args,
        options: {
          ...dataOpt,
          json: { type: 'boolean', default: false },
          type: { type: 'string' },
          agent: { type: 'string' },
          user: { type: 'string' },
          since: { type: 'string' },
          until: { type: 'string' },
          limit: { type: 'string' },
        },
      });
      for (const k of ['since', 'until'] as const) {
        const v = values[k];
        if (v !== undefined && Number.isNaN(Date.parse(v))) throw new Error(`--${k}: not an ISO date: ${v}`);
      }
      return withConsole(open, (ctx) => {
        const events = queryEvents(ctx.db, {
          type: values.type,
          terminalId: values.agent,
          user: values.user,
          since: values.since ? new Date(values.since).toISOString() : undefined,
          until: values.until ? new Date(values.until).toISOString() : undefined,
          limit: values.limit ? Number(values.limit) : undefined,
        });
        if (values.json) out(events);
        else
          for (const e of events)
            process.stdout.write(`${e.ts}${e.agentTs !== null ? ` (${t('端末の申告', 'agent said')} ${e.agentTs})` : ''} ${e.terminalId.slice(0, 8)} #${e.seq} ${e.type.padEnd(28)} ${e.severity.padEnd(8)} ${safeText(e.user ?? '-', 32)} ${e.chain === 'ok' ? '' : '[' + e.chain + '] '}${safeText(JSON.stringify(e.data), 200)}\n`);
        return 0;
      });
    },
  },
  policy: {
    summary: 'policy get --data DIR | policy set --data DIR --file FILE   署名付きポリシー / signed policy',
    run(args, open) {
      const [sub, ...rest] = args;
      const { values } = parseArgs({ args: rest, options: { ...dataOpt, file: { type: 'string' }, json: { type: 'boolean', default: true } } });
      return withConsole(open, (ctx) => {
        if (sub === 'get') {
          out(ctx.currentPolicy());
          return 0;
        }
        if (sub === 'set') {
          if (!values.file) throw new Error('usage: policy set --data DIR --file FILE');
          const parsed = parsePolicyBody(readFileSync(values.file, 'utf8'), ctx.currentPolicy().policy);
          if (!parsed.ok) {
            process.stderr.write(t('ポリシーが不正です。変更していません:\n', 'invalid policy, nothing changed:\n') + parsed.errors.map((e) => `  - ${e}\n`).join(''));
            return 2;
          }
          try {
            const signed = ctx.publishPolicy(parsed.body, 'cli');
            process.stdout.write(t(`ポリシー v${signed.policy.version} を署名・公開しました\n`, `policy v${signed.policy.version} signed and published\n`));
            return 0;
          } catch (e) {
            if (e instanceof PolicyValidationError) {
              process.stderr.write(e.errors.map((x) => `  - ${x}\n`).join(''));
              return 2;
            }
            throw e;
          }
        }
        throw new Error('usage: policy get|set --data DIR [--file FILE]');
      });
    },
  },
};
