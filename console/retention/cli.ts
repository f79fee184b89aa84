/**
 * `sekimori-console retention set|unset|show|run` and `archive list|verify|search`.
 * `archive verify|search` open no console unless --data is given (then only its public key file).
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { t } from '../../protocol/i18n.js';
import { safeText } from '../../protocol/text.js';
import { consolePaths } from '../core/paths.js';
import { withConsole, type CliCommand } from '../module.js';
import { MAX_TAR_BYTES } from '../report/tar.js';
import { BOM, csvLine } from '../web/csv.js';
import { checkDays, checkFamily } from './periods.js';
import { periodsInForce, runRetention } from './run.js';
import { listArchives, setPeriod, unsetPeriod } from './store.js';
import { checkFilter, SEARCH_CSV_HEADER, searchCsvCells, searchRows, verifyArchive, type ArchiveCheck } from './verify.js';

export const retentionCommand: CliCommand = {
  summary:
    'retention set --family F --days N | unset --family F | show | run [--max-archives N] --data DIR [--json]   保存期間と期限切れ操作ログのアーカイブ / retention periods, archive then delete',
  run(args, open) {
    const [sub, ...rest] = args;
    const { values } = parseArgs({
      args: rest,
      options: { data: { type: 'string' }, family: { type: 'string' }, days: { type: 'string' }, user: { type: 'string', default: 'cli' }, json: { type: 'boolean', default: false }, 'max-archives': { type: 'string' } },
    });
    const now = new Date();
    if (sub === 'set' || sub === 'unset') {
      const f = checkFamily(values.family);
      if ('error' in f) throw new Error(f.error);
      const d = sub === 'set' ? checkDays(values.days) : { ok: null };
      if ('error' in d) throw new Error(d.error);
      withConsole(open, (ctx) => {
        // The change is recorded first, in the same transaction as the setting.
        ctx.db.transaction(() => {
          ctx.recordEvent({ type: 'admin.retention_set', user: values.user, data: { family: f.ok, days: d.ok } });
          if (d.ok === null) unsetPeriod(ctx.db, f.ok);
          else setPeriod(ctx.db, f.ok, d.ok, values.user, now);
        })();
      });
      process.stdout.write(values.json ? JSON.stringify({ family: f.ok, days: d.ok }) + '\n' : `${f.ok}: ${d.ok === null ? t('期間なし(すべて保存)', 'no period (keep everything)') : `${d.ok} ${t('日', 'days')}`}\n`);
      return 0;
    }
    if (sub === 'show') {
      const periods = withConsole(open, (ctx) => periodsInForce(ctx, now));
      if (values.json) process.stdout.write(JSON.stringify(periods) + '\n');
      else if (!periods.length) process.stdout.write(t('保存期間は設定されていません(すべて保存)', 'no retention period set (everything is kept)') + '\n');
      else for (const p of periods) process.stdout.write(`${p.family}\t${p.days} ${t('日', 'days')}\t${p.source}\t${t('対象', 'before')} ${p.cutoff}\n`);
      return 0;
    }
    if (sub === 'run') {
      const max = values['max-archives'] ? Number(values['max-archives']) : 100;
      if (!Number.isInteger(max) || max < 1 || max > 1000) throw new Error('--max-archives: 1 … 1000');
      const r = withConsole(open, (ctx) => runRetention(ctx, now, { actor: values.user, maxArchives: max }));
      if (values.json) process.stdout.write(JSON.stringify(r) + '\n');
      else {
        for (const a of r.archives) process.stdout.write(`${t('アーカイブ', 'archive')}: ${a.file} ${a.events} ${t('件', 'events')} ${a.bytes} bytes, ${t('削除', 'deleted')} ${a.deleted}, manifest sha256 ${a.manifestSha256}\n`);
        if (!r.archives.length && !r.failed) process.stdout.write(t('期限切れの操作ログはありません', 'nothing due') + '\n');
        if (r.more) process.stdout.write(t('まだ期限切れの操作ログがあります(もう一度実行してください)', 'more is due: run again') + '\n');
      }
      if (r.failed) process.stderr.write(`${t('アーカイブできなかったため削除していません', 'archive failed: nothing deleted')}: ${r.failed}\n`);
      return r.failed ? 1 : 0;
    }
    throw new Error('usage: retention set|unset|show|run …');
  },
};

function pinFrom(values: { 'public-key'?: string | undefined; data?: string | undefined; fingerprint?: string | undefined }): { publicKeyPem?: string; fingerprint?: string } {
  const pin: { publicKeyPem?: string; fingerprint?: string } = {};
  if (values['public-key']) pin.publicKeyPem = readFileSync(values['public-key'], 'utf8');
  else if (values.data) pin.publicKeyPem = readFileSync(consolePaths(values.data).policyPublicKey, 'utf8');
  if (values.fingerprint) pin.fingerprint = values.fingerprint;
  return pin;
}

function readChecked(file: string, pin: ReturnType<typeof pinFrom>): ArchiveCheck {
  // Bounded before reading: the file is read whole.
  if (statSync(file).size > MAX_TAR_BYTES) return { ok: false, reason: t('ファイルが大きすぎます', 'file too large') };
  return verifyArchive(readFileSync(file), pin);
}

export const archiveCommand: CliCommand = {
  summary:
    'archive verify FILE [--data DIR | --public-key PEM] | search FILE [--type T] [--agent A] [--from ISO] [--to ISO] [--text S] [--json|--csv] | list --data DIR   アーカイブの検証と検索 / verify and search an archive offline',
  run(args, open) {
    const [sub, ...rest] = args;
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        data: { type: 'string' },
        'public-key': { type: 'string' },
        fingerprint: { type: 'string' },
        json: { type: 'boolean', default: false },
        csv: { type: 'boolean', default: false },
        type: { type: 'string' },
        agent: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        text: { type: 'string' },
        limit: { type: 'string' },
      },
    });
    if (sub === 'list') {
      const rows = withConsole(open, (ctx) => listArchives(ctx.db));
      if (values.json) process.stdout.write(JSON.stringify(rows.map((r) => ({ ...r, path: join(values.data ?? '', 'archives', r.file) }))) + '\n');
      else for (const r of rows) process.stdout.write(`${r.id}\t${r.status}\t${r.file}\t${r.fromTs ?? '-'}〜${r.toTs ?? '-'}\t${r.events}\t${r.deleted}\t${r.manifestSha256 ?? '-'}\n`);
      return 0;
    }
    const file = positionals[0];
    if (!file || positionals.length !== 1) throw new Error(`usage: archive ${sub ?? 'verify|search'} FILE`);
    const pin = pinFrom(values);
    if (sub === 'verify') {
      const r = readChecked(file, pin);
      if (values.json) {
        process.stdout.write(
          JSON.stringify(r.ok ? { ok: true, pinned: r.pinned, fingerprint: r.manifest.key.fingerprint, period: r.manifest.period, families: r.manifest.families, counts: r.manifest.counts, chains: r.manifest.chains } : { ok: false, reason: r.reason }) + '\n',
        );
      } else if (r.ok) {
        const m = r.manifest;
        process.stdout.write(
          `${t('検証成功', 'verified')}: ${file}\n` +
            `${t('署名鍵', 'signing key')} sha256: ${m.key.fingerprint}${r.pinned ? '' : t('(ファイル内の鍵。--data か --public-key で管理コンソールの鍵と照合してください)', ' (the key in the file: pin the console’s with --data or --public-key)')}\n` +
            `${t('期間', 'period')}: ${m.period.from ?? '-'} 〜 ${m.period.to ?? '-'} / ${t('種別', 'families')}: ${m.families.map((f) => `${f.family} ${f.days}d`).join(', ')}\n` +
            `${t('操作ログ', 'events')}: ${m.counts.events} / ${t('端末・チェーン', 'chains')}: ${m.counts.agents}\n` +
            m.chains.map((c) => `  ${safeText(c.agentId, 64)}: seq ${c.firstSeq}〜${c.lastSeq} (${c.events}, ${c.runs} runs) last ${c.lastHash.slice(0, 16)}…${c.badHashes || c.badLinks ? ` ${t('取込時に検出済みの不整合', 'findings already at ingest')}: ${c.badHashes}/${c.badLinks}` : ''}`).join('\n') +
            '\n',
        );
      } else process.stderr.write(`${t('検証失敗', 'verification failed')}: ${file}: ${r.reason}\n`);
      return r.ok ? 0 : 1;
    }
    if (sub === 'search') {
      const filter = { type: values.type, agent: values.agent, from: values.from, to: values.to, text: values.text };
      const bad = checkFilter(filter);
      if (bad) throw new Error(bad);
      const r = readChecked(file, pin);
      if (!r.ok) {
        // A tampered archive is not evidence: refuse to show what it says.
        process.stderr.write(`${t('検証失敗のため検索しません', 'verification failed: not searched')}: ${file}: ${r.reason}\n`);
        return 1;
      }
      const limit = values.limit ? Number(values.limit) : 1_000_000;
      if (!Number.isInteger(limit) || limit < 1) throw new Error('--limit: a positive whole number');
      const found = searchRows(r.rows, filter, limit);
      if (values.csv) process.stdout.write(BOM + csvLine([...SEARCH_CSV_HEADER]) + found.rows.map((x) => csvLine(searchCsvCells(x))).join(''));
      else if (values.json) for (const x of found.rows) process.stdout.write(JSON.stringify(x) + '\n');
      else {
        // Terminal-bound text: agents' strings with control characters made visible (no escape sequences reach the terminal).
        for (const x of found.rows) process.stdout.write(`${safeText(x.ts, 40)}\t${safeText(x.terminal_id, 64)}\t${x.seq}\t${safeText(x.type, 64)}\t${safeText(x.user ?? '-', 256)}\t${safeText(x.data, 2000)}\n`);
        process.stderr.write(`${found.total} ${t('件', 'events')}\n`);
      }
      return 0;
    }
    throw new Error('usage: archive verify|search|list …');
  },
};
