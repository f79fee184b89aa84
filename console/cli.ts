/** `sekimori-console` command line: init, serve, and the commands of every module. */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { t } from '../protocol/i18n.js';
import type { CliCommand, ConsoleContext } from './module.js';
import { modules } from './modules.js';
import { initConsole, openConsole } from './core/context.js';
import { serve } from './serve.js';
import { backupCommands } from './backup/cli.js';
import { CHECKPOINTER_COMMAND, runCheckpointer } from './core/checkpointer.js';

const defaultData = process.env.SEKIMORI_CONSOLE_DATA ?? '/var/lib/sekimori-console';

const core: Record<string, CliCommand> = {
  init: {
    summary: 'init --data DIR [--san HOST_OR_IP ...] [--organisation NAME]   CA・サーバ証明書・初期管理者 / CA, server certificate, first admin',
    async run(args) {
      const { values } = parseArgs({
        args,
        options: {
          data: { type: 'string', default: defaultData },
          san: { type: 'string', multiple: true, default: [] },
          organisation: { type: 'string', default: process.env.SEKIMORI_ORGANISATION ?? '自治体' },
          json: { type: 'boolean', default: false },
        },
      });
      const r = await initConsole(values.data, { sans: values.san, organisation: values.organisation });
      if (values.json) process.stdout.write(JSON.stringify({ caFingerprint: r.caFingerprint, adminCredentialsFile: r.adminCredentialsFile }) + '\n');
      else
        process.stdout.write(
          `${t('初期化しました', 'initialised')}: ${values.data}\n` +
            `CA fingerprint: ${r.caFingerprint}\n` +
            `${t('初期管理者の資格情報', 'initial administrator credentials')}: ${r.adminCredentialsFile}\n`,
        );
      return 0;
    },
  },
  serve: {
    summary:
      'serve --data DIR [--listen 127.0.0.1:8443] [--validate-listen HOST:PORT|off]   管理コンソールを起動 (privacyIDEA 互換ポートの既定は --listen のポート+1) / run the console (privacyIDEA-compatible port defaults to the --listen port + 1)',
    async run(args) {
      const { values } = parseArgs({
        args,
        options: {
          data: { type: 'string', default: defaultData },
          listen: { type: 'string', default: '127.0.0.1:8443' },
          'validate-listen': { type: 'string' },
        },
      });
      await serve(values.data, values.listen, values['validate-listen']);
      // Stopped and the store closed: a handle left open somewhere must not keep the process alive
      // (seen once in the single-executable tier). Unref'd: a clean exit does not wait for it.
      setTimeout(() => process.exit(0), 2_000).unref();
      return 0;
    },
  },
};

export async function main(argv: string[]): Promise<number> {
  const commands: Record<string, CliCommand> = { ...core, ...backupCommands(modules) };
  for (const m of modules) Object.assign(commands, m.commands ?? {});
  const [name, ...rest] = argv;
  // Internal: the helper `serve` starts for WAL checkpoints (core/checkpointer.ts); not listed.
  if (name === CHECKPOINTER_COMMAND && rest.length === 1) return runCheckpointer(rest[0]!);
  const cmd = name ? commands[name] : undefined;
  if (!cmd) {
    process.stderr.write(
      `使い方 / usage: sekimori-console <command>   (${hostname()})\n` + Object.entries(commands).map(([k, c]) => `  ${k.padEnd(14)} ${c.summary}`).join('\n') + '\n',
    );
    return name === undefined || name === 'help' || name === '--help' ? 0 : 2;
  }
  const dataIndex = rest.indexOf('--data');
  const data = dataIndex >= 0 ? (rest[dataIndex + 1] ?? defaultData) : defaultData;
  const open = (): ConsoleContext => openConsole(data);
  try {
    return await cmd.run(rest, open);
  } catch (e) {
    process.stderr.write(`sekimori-console ${name}: ${(e as Error).message}\n`);
    return 2;
  }
}
