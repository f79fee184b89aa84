/**
 * `sekimori-console backup --data DIR --out FILE`, `backup verify --file FILE`, `restore --file FILE --data NEWDIR`.
 * The passphrase comes from SEKIMORI_BACKUP_PASSPHRASE or is typed on a terminal without echo; with
 * neither the command refuses (a backup never carries keys in clear). These commands open no console
 * (openConsole would migrate a folder): they are registered by console/cli.ts, which hands over the
 * feature registry so restore knows which schema versions this console can run.
 */
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { t } from '../../protocol/i18n.js';
import type { CliCommand } from '../module.js';
import { takeBackup } from './backup.js';
import { WrongPassphraseError } from './crypto.js';
import { DB_MEMBER } from './format.js';
import { DamagedBackupError, inspectBackup, knownSchema, restoreBackup, withBackupFile } from './restore.js';

export const PASSPHRASE_ENV = 'SEKIMORI_BACKUP_PASSPHRASE';
const MAX_TYPED = 1024;

function actor(): string {
  try {
    return process.env.SUDO_USER || userInfo().username;
  } catch {
    return 'cli';
  }
}

/** Reads one line from the terminal with echo off (raw mode); Ctrl-C / Ctrl-D abort. */
function readHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  return new Promise((resolvePass, reject) => {
    let typed = '';
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolvePass(typed);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003' || ch === '\u0004') return done(new Error(t('中止しました', 'aborted')));
        if (ch === '\u007f' || ch === '\b') typed = [...typed].slice(0, -1).join('');
        else if (typed.length < MAX_TYPED) typed += ch;
      }
    };
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onData);
  });
}

async function passphrase(confirm: boolean): Promise<{ value: string; from: 'env' | 'terminal' }> {
  const env = process.env[PASSPHRASE_ENV];
  if (env !== undefined && env !== '') return { value: env, from: 'env' };
  if (!process.stdin.isTTY || typeof process.stdin.setRawMode !== 'function')
    throw new Error(
      t(
        `パスフレーズがありません: ${PASSPHRASE_ENV} に設定するか端末から実行してください(鍵を暗号化せずに扱うことはしません)`,
        `no passphrase: set ${PASSPHRASE_ENV} or run on a terminal (keys are never handled in clear)`,
      ),
    );
  const value = await readHidden(t('バックアップのパスフレーズ / backup passphrase: ', 'backup passphrase: '));
  if (confirm) {
    const again = await readHidden(t('もう一度 / again: ', 'again: '));
    if (again !== value) throw new Error(t('パスフレーズが一致しません', 'the passphrases differ'));
  }
  return { value, from: 'terminal' };
}

export function backupCommands(modules: readonly { name: string; migrations: readonly string[] }[]): Record<string, CliCommand> {
  const known = () => knownSchema(modules);
  return {
    backup: {
      summary:
        'backup --data DIR --out FILE [--json] | backup verify --file FILE [--json]   稼働中のバックアップ(鍵はパスフレーズで暗号化)と検証 / online backup (keys encrypted with a passphrase) and its check',
      async run(args) {
        if (args[0] === 'verify') {
          const { values } = parseArgs({ args: args.slice(1), options: { file: { type: 'string' }, json: { type: 'boolean', default: false }, data: { type: 'string' } } });
          if (!values.file) throw new Error('--file FILE is required');
          let damage: string[];
          let incompatible: string[] = [];
          let summary: Record<string, unknown> = {};
          try {
            const ins = withBackupFile(values.file, (src) => inspectBackup(src, known()));
            damage = ins.damage;
            incompatible = ins.incompatible;
            const m = ins.manifest;
            summary = { backupId: m.backupId, createdAt: m.createdAt, consoleVersion: m.consoleVersion, schema: m.schema, db: m.db, members: m.members };
          } catch (e) {
            if (!(e instanceof DamagedBackupError)) throw e;
            damage = e.problems;
          }
          const intact = damage.length === 0;
          if (values.json) process.stdout.write(JSON.stringify({ file: values.file, intact, restorableHere: intact && incompatible.length === 0, damage, incompatible, ...summary }) + '\n');
          else {
            if (intact) {
              const db = summary.db as { tables: Record<string, number>; pageCount: number };
              process.stdout.write(
                `${t('バックアップは完全です', 'backup is intact')}: ${values.file}\n` +
                  `  ${t('作成', 'created')}: ${String(summary.createdAt)}  ${t('版', 'version')}: ${String(summary.consoleVersion)}\n` +
                  `  ${DB_MEMBER}: ${db.pageCount} pages, events ${db.tables.events ?? 0}, agents ${db.tables.agents ?? 0}\n`,
              );
            } else process.stdout.write(`${t('バックアップが壊れています', 'backup is DAMAGED')}: ${values.file}\n` + damage.map((d) => `  - ${d}\n`).join(''));
            for (const i of incompatible) process.stdout.write(`  ! ${i}\n`);
          }
          return intact && incompatible.length === 0 ? 0 : 1;
        }
        const { values } = parseArgs({ args, options: { data: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean', default: false } } });
        if (!values.data || !values.out) throw new Error('usage: backup --data DIR --out FILE');
        const pass = await passphrase(true);
        const r = takeBackup({ dataDir: values.data, out: values.out, passphrase: pass.value, passphraseFrom: pass.from, actor: actor() });
        if (values.json)
          process.stdout.write(
            JSON.stringify({ file: r.file, bytes: r.bytes, backupId: r.manifest.backupId, createdAt: r.manifest.createdAt, tables: r.manifest.db.tables, snapshotMs: Math.round(r.snapshotMs), checkMs: Math.round(r.checkMs), writeMs: Math.round(r.writeMs) }) + '\n',
          );
        else
          process.stdout.write(
            `${t('バックアップを作成しました', 'backup written')}: ${r.file} (${r.bytes} bytes, events ${r.manifest.db.tables.events ?? 0})\n` +
              t('パスフレーズはバックアップと別の場所に保管してください。\n', 'Keep the passphrase apart from the backup file.\n'),
          );
        return 0;
      },
    },
    restore: {
      summary: 'restore --file FILE --data NEWDIR [--json]   空のフォルダへバックアップを復元 / restore a backup into an empty folder',
      async run(args) {
        const { values } = parseArgs({ args, options: { data: { type: 'string' }, file: { type: 'string' }, json: { type: 'boolean', default: false } } });
        if (!values.data || !values.file) throw new Error('usage: restore --file FILE --data NEWDIR');
        const pass = await passphrase(false);
        try {
          const r = restoreBackup({ file: values.file, dataDir: values.data, passphrase: pass.value, actor: actor(), known: known() });
          if (values.json) process.stdout.write(JSON.stringify({ dataDir: r.dataDir, backupId: r.manifest.backupId, createdAt: r.manifest.createdAt, integrity: r.integrity, tables: r.manifest.db.tables }) + '\n');
          else
            process.stdout.write(
              `${t('復元しました', 'restored')}: ${r.dataDir} (${t('バックアップ作成', 'backup of')} ${r.manifest.createdAt}, integrity_check ok)\n` +
                t('同じアドレスで sekimori-console serve を起動してください。端末は再登録不要です。\n', 'Start sekimori-console serve on the same address; terminals need no re-enrolment.\n'),
            );
          return 0;
        } catch (e) {
          if (e instanceof WrongPassphraseError) {
            process.stderr.write(`sekimori-console restore: ${e.message}\n`);
            return 3;
          }
          throw e;
        }
      },
    },
  };
}
