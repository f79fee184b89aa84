/** `sekimori-console software …` — baselines and quarantine of unauthorized software. */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { t } from '../../protocol/i18n.js';
import { safeText } from '../../protocol/text.js';
import { listAgents } from '../backbone/store.js';
import { withConsole, type CliCommand, type ConsoleContext } from '../module.js';
import {
  approveBaseline,
  importBaseline,
  inventoryBaselineDiff,
  inventoryOf,
  inventorySummaries,
  inventorySummary,
  listBaselines,
  listQuarantined,
  parseScope,
  rejectBaseline,
  requestBaseline,
  requestRestore,
  terminalsWith,
} from './store.js';

const USAGE =
  'software baseline import --file F | baseline request --agent ID [--scope DIR ...] | baseline list | baseline approve ID | baseline reject ID | quarantine list [--agent ID] | quarantine restore QID [--agent ID] | inventory [--agent ID [--baseline]] [--package NAME [--version V]]   (--data DIR [--by NAME] [--json])';

/** `software inventory …`: terminals and their package counts; one terminal's packages (or its differences from the approved baseline); which terminals have a package. */
function inventory(ctx: ConsoleContext, o: { agent?: string; package?: string; version?: string; baseline: boolean }, print: (x: unknown, human: string) => void): number {
  const names = new Map(listAgents(ctx).map((a) => [a.id, safeText(a.hostname, 64)]));
  const host = (id: string) => names.get(id) ?? '?';
  if (o.package !== undefined) {
    const hits = terminalsWith(ctx, { name: o.package, ...(o.version ? { version: o.version } : {}) });
    print(
      hits.map((h) => ({ ...h, hostname: host(h.agentId) })),
      hits.length
        ? hits.map((h) => `${h.agentId}  ${host(h.agentId).padEnd(20)} ${safeText(h.name, 80)}  ${safeText(h.version, 60)}  ${safeText(h.arch, 16)}\n`).join('')
        : t(`該当する端末はありません: ${safeText(o.package, 80)}\n`, `no terminal has ${safeText(o.package, 80)}\n`),
    );
    return 0;
  }
  if (o.agent !== undefined) {
    const summary = inventorySummary(ctx, o.agent);
    if (!summary) throw new Error(t(`この端末のソフトウェア一覧はまだ届いていません: ${safeText(o.agent, 64)}`, `no inventory reported by terminal ${safeText(o.agent, 64)}`));
    if (o.baseline) {
      const diff = inventoryBaselineDiff(ctx, o.agent);
      if (!diff) throw new Error(t('承認済みのベースラインがありません', 'no approved baseline'));
      const lines = [
        ...diff.missing.map((m) => `missing  ${safeText(m.name, 80)}  ${safeText(m.version, 60)}\n`),
        ...diff.extra.map((e) => `extra    ${safeText(e.name, 80)}  ${safeText(e.version, 60)}  ${safeText(e.arch, 16)}\n`),
        ...diff.otherVersion.map((v) => `version  ${safeText(v.name, 80)}  ${v.installed.map((i) => safeText(i.version, 60)).join(',')}  (baseline: ${v.approved.map((a) => safeText(a, 60)).join(',')})\n`),
      ];
      print({ agentId: o.agent, hostname: host(o.agent), ...diff }, lines.join('') || t('差分はありません\n', 'no differences\n'));
      return 0;
    }
    const packages = inventoryOf(ctx, o.agent);
    print({ ...summary, hostname: host(o.agent), packages }, packages.map((p) => `${safeText(p.name, 80).padEnd(40)} ${safeText(p.version, 60).padEnd(30)} ${safeText(p.arch, 16)}\n`).join(''));
    return 0;
  }
  const all = inventorySummaries(ctx);
  print(
    all.map((s) => ({ ...s, hostname: host(s.agentId) })),
    all.map((s) => `${s.agentId}  ${host(s.agentId).padEnd(20)} ${String(s.stored).padStart(6)}${s.stored < s.total ? `/${s.total}` : ''} pkgs  ${s.platform.padEnd(8)} ${s.reportedAt}\n`).join(''),
  );
  return 0;
}

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
        package: { type: 'string' },
        version: { type: 'string' },
        baseline: { type: 'boolean', default: false },
        scope: { type: 'string', multiple: true },
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
    if (area === 'baseline' && action === 'request') {
      // "この端末を基準にする" from the command line: the terminal collects at its next sync.
      if (!values.agent) throw new Error('usage: software baseline request --agent ID [--scope DIR ...]');
      const parsed = parseScope((values.scope ?? []).join('\n'));
      if ('error' in parsed) throw new Error(parsed.error);
      const agent = values.agent;
      return withConsole(open, (ctx) => {
        const { request, created } = requestBaseline(ctx, agent, parsed.scope, actor);
        print(
          { ...request, created },
          created
            ? t(`基準ソフトウェアを要求しました(端末の次回同期で収集): ${request.id}\n`, `baseline requested (collected at the terminal's next sync): ${request.id}\n`)
            : t(`要求済みです: ${request.id} (${request.state})\n`, `already requested: ${request.id} (${request.state})\n`),
        );
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
    if (area === 'inventory' && action === undefined) {
      if (values.version !== undefined && values.package === undefined) throw new Error('usage: software inventory --package NAME --version V');
      return withConsole(open, (ctx) =>
        inventory(ctx, { ...(values.agent !== undefined ? { agent: values.agent } : {}), ...(values.package !== undefined ? { package: values.package } : {}), ...(values.version !== undefined ? { version: values.version } : {}), baseline: values.baseline }, print),
      );
    }
    process.stderr.write(`usage: sekimori-console ${USAGE}\n`);
    return 2;
  },
};
