/**
 * `sekimori-console evidence export|verify`: the signed self-inspection evidence (./evidence.ts).
 * `verify` opens no console: it needs only the archive (and optionally the console's key to pin).
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { t } from '../../protocol/i18n.js';
import { withConsole, type CliCommand } from '../module.js';
import { verifyEvidence } from './evidence.js';
import { exportEvidence } from './export.js';
import { MAX_TAR_BYTES } from './tar.js';

const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;

function jstDay(d: Date): string {
  return new Date(d.getTime() + 9 * 3_600_000).toISOString().slice(0, 10);
}

export const evidenceCommand: CliCommand = {
  summary:
    'evidence export --data DIR [--from YYYY-MM-DD] [--to YYYY-MM-DD] --out FILE | evidence verify FILE [--public-key PEM | --fingerprint FP] [--json]   署名付き証跡の書き出しと検証 / signed evidence export and offline verification',
  run(args, open) {
    const [sub, ...rest] = args;
    if (sub === 'export') {
      const { values } = parseArgs({
        args: rest,
        options: { data: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, out: { type: 'string' }, user: { type: 'string', default: 'cli' }, json: { type: 'boolean', default: false } },
      });
      const now = new Date();
      const to = values.to ?? jstDay(now);
      const from = values.from ?? jstDay(new Date(now.getTime() - 29 * 86_400_000));
      if (!DAY_RE.test(from) || !DAY_RE.test(to) || Number.isNaN(Date.parse(from)) || Number.isNaN(Date.parse(to)) || from > to) throw new Error('--from/--to: YYYY-MM-DD, from ≤ to');
      if (Date.parse(to) - Date.parse(from) > 366 * 86_400_000) throw new Error('period: at most 366 days');
      if (!values.out) throw new Error('--out FILE is required');
      const out = withConsole(open, (ctx) => exportEvidence(ctx, from, to, values.user, now));
      writeFileSync(values.out, out.archive, { mode: 0o600 });
      if (values.json) process.stdout.write(JSON.stringify({ file: values.out, bytes: out.archive.length, events: out.events, fingerprint: out.fingerprint }) + '\n');
      else process.stdout.write(`${t('書き出しました', 'written')}: ${values.out} (${out.archive.length} bytes, ${out.events} events)\n${t('署名鍵', 'signing key')} sha256: ${out.fingerprint}\n`);
      return 0;
    }
    if (sub === 'verify') {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { 'public-key': { type: 'string' }, fingerprint: { type: 'string' }, json: { type: 'boolean', default: false }, data: { type: 'string' } },
      });
      const file = positionals[0];
      if (!file || positionals.length !== 1) throw new Error('usage: evidence verify FILE');
      // Bounded before reading: the file is read whole.
      if (statSync(file).size > MAX_TAR_BYTES) {
        process.stderr.write(`${t('検証失敗', 'verification failed')}: ${file}: ${t('ファイルが大きすぎます', 'file too large')}\n`);
        return 1;
      }
      const r = verifyEvidence(readFileSync(file), { publicKeyPem: values['public-key'] ? readFileSync(values['public-key'], 'utf8') : undefined, fingerprint: values.fingerprint });
      if (values.json) {
        process.stdout.write(
          JSON.stringify(r.ok ? { ok: true, fingerprint: r.manifest.key.fingerprint, period: r.manifest.period, counts: r.manifest.counts, chains: r.manifest.chains.length, items: r.manifest.items } : { ok: false, reason: r.reason }) + '\n',
        );
      } else if (r.ok) {
        const m = r.manifest;
        process.stdout.write(
          `${t('検証成功', 'verified')}: ${file}\n` +
            `${t('発行', 'organisation')}: ${m.organisation} / ${m.period.from} 〜 ${m.period.to} / ${m.generatedAt} / ${m.generatedBy}\n` +
            `${t('署名鍵', 'signing key')} sha256: ${m.key.fingerprint}${values['public-key'] || values.fingerprint ? '' : t('(ファイル内の鍵。管理コンソールの鍵と照合してください)', ' (the key in the file: compare it with the console’s)')}\n` +
            `${t('操作ログ', 'events')}: ${m.counts.events} / ${t('チェーン', 'chains')}: ${m.chains.length} / ${t('端末', 'terminals')}: ${m.counts.terminals}\n` +
            m.items.map((i) => `  ${i.id}: ${i.verdict} ${i.covered}/${i.total}`).join('\n') +
            '\n',
        );
      } else process.stderr.write(`${t('検証失敗', 'verification failed')}: ${file}: ${r.reason}\n`);
      return r.ok ? 0 : 1;
    }
    throw new Error('usage: evidence export|verify …');
  },
};
