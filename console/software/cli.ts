/** `sekimori-console software …` — baselines and quarantine of unauthorized software. */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { t } from '../../protocol/i18n.js';
import { safeText } from '../../protocol/text.js';
import { withConsole, type CliCommand } from '../module.js';
import { approveBaseline, importBaseline, listBaselines, listQuarantined, rejectBaseline, requestRestore } from './store.js';

const USAGE =
  'software baseline import --file F | baseline list | baseline approve ID | baseline reject ID | quarantine list [--agent ID] | quarantine restore QID [--agent ID]   (--data DIR [--by NAME] [--json])';

export const softwareCommand: CliCommand = {
  summary: USAGE + '   無許可ソフトウェア対策 / unauthorized software',
  run(args, open) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        data: { type: 'string' },
        file: { type: 'string' },
        agent: { type: 'string' },
        by: { type: 'string', default: 'cli' },
        json: { type: 'boolean', default: false },
      },
    });
    const [area, action, arg] = positionals;
    const print = (x: unknown, human: string) => process.stdout.write(values.json ? JSON.stringify(x, null, 2) + '\n' : human);
    const actor = safeText(values.by, 64);
    if (area === 'baseline' && action === 'import') {
      if (!values.file) throw new Error('usage: software baseline import --file F');
      const text = readFileSync(values.file, 'utf8');
      return withConsole(open, (ctx) => {
        const b = importBaseline(ctx, text, actor);
        print(b, `${t('ベースラインを取り込みました(承認待ち)', 'baseline imported (pending approval)')}: ${b.id}  ${b.packages} packages, ${b.files} files\n`);
        return 0;
      });
    }
    if (area === 'baseline' && action === 'list') {
      return withConsole(open, (ctx) => {
        const list = listBaselines(ctx);
        print(list, list.map((b) => `${b.id}  ${b.status.padEnd(9)} ${safeText(b.host, 30).padEnd(20)} ${b.packages} pkgs ${b.files} files  ${b.importedAt}\n`).join(''));
        return 0;
      });
    }
    if (area === 'baseline' && (action === 'approve' || action === 'reject')) {
      if (!arg) throw new Error(`usage: software baseline ${action} ID`);
      return withConsole(open, (ctx) => {
        if (action === 'reject') {
          rejectBaseline(ctx, arg, actor);
          print({ id: arg, status: 'rejected' }, t(`却下しました: ${arg}\n`, `rejected ${arg}\n`));
          return 0;
        }
        const r = approveBaseline(ctx, arg, actor);
        print(r, t(`承認し、ポリシー v${r.policyVersion} として公開しました: ${arg}\n`, `approved ${arg}, published as policy v${r.policyVersion}\n`));
        return 0;
      });
    }
    if (area === 'quarantine' && action === 'list') {
      return withConsole(open, (ctx) => {
        const list = listQuarantined(ctx, values.agent);
        print(list, list.map((q) => `${q.id}  ${q.agentId.slice(0, 8)}  ${q.state.padEnd(17)} ${safeText(q.path, 80)}  ${q.sha256.slice(0, 12)}\n`).join(''));
        return 0;
      });
    }
    if (area === 'quarantine' && action === 'restore') {
      if (!arg) throw new Error('usage: software quarantine restore QID [--agent ID]');
      return withConsole(open, (ctx) => {
        const r = requestRestore(ctx, arg, actor, values.agent);
        print(r, t(`復元を要求しました(端末の次回同期で実行): ${arg}\n`, `restore requested (done at the terminal's next sync): ${arg}\n`));
        return 0;
      });
    }
    process.stderr.write(`usage: sekimori-console ${USAGE}\n`);
    return 2;
  },
};
