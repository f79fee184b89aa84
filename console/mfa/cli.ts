/** `sekimori-console mfa …` — enrolment and administration of staff TOTP. */
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import QRCode from 'qrcode';
import type { CliCommand, ConsoleContext } from '../module.js';
import {
  addValidateClient,
  assign,
  assignToken,
  confirmUser,
  enrollUser,
  importTokenRows,
  listStock,
  listUsers,
  MfaError,
  newRecoveryCodes,
  resyncUser,
  setDisabled,
  unlockUser,
} from './store.js';
import { parseOathCsv, parseSekimoriCsv, type ParseResult } from './import-csv.js';
import { parsePskc } from './import-pskc.js';

const USAGE = `使い方 / usage: sekimori-console mfa <subcommand> --data DIR …
  enroll   --user NAME [--json]              新しい秘密鍵・QR・回復コード / new secret, QR, recovery codes
  confirm  --user NAME --code CODE           最初のコードで登録完了 / confirm with a first code
  reset    --user NAME [--json]              再登録 / new secret (pending until confirmed)
  disable  --user NAME | enable --user NAME  無効化・有効化 / disable, enable
  unlock   --user NAME                       ロック解除 / clear a lockout
  import   --file F [--format csv|oath-csv|pskc] [--psk-file F | --password-file F] [--replace]
           ハードウェアトークンの取込(全件か0件) / hardware-token seeds, all or nothing:
           csv = user,serial,secret|seed_hex[,type,algorithm,digits,period,counter] (user may be empty)
           oath-csv = privacyIDEA: serial,hexkey[,hotp|totp[,6|8[,counter|30|60]]]  pskc = RFC 6030 (.pskcxml/.xml)
  tokens   [--json]                          未割当のトークン / imported tokens nobody holds yet
  assign-token --user NAME --serial S [--replace]  トークンを利用者に渡す / hand a token to a user
  resync   --user NAME --codes C1 C2         連続する2つのコードで再同期 / resync with two consecutive codes
  recovery --user NAME [--count N] [--json]  回復コードの再発行 / new one-time recovery codes
  assign   --user NAME --terminal ID [--remove]  端末への割当 / assign a user to a terminal (agent id, or win:NAME)
  list     [--json]                          一覧 / list users
  client   add --name NAME [--address IP]    Windows端末(Credential Provider)の登録。send_upn=1 には --address が必要 / register a Windows terminal (send_upn=1 needs --address)`;

type Opts = Map<string, string | true>;

function parse(args: string[]): { pos: string[]; opts: Opts } {
  const pos: string[] = [];
  const opts: Opts = new Map();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith('--')) {
      const name = a.slice(2);
      const flag = ['json', 'replace', 'remove'].includes(name);
      if (flag) opts.set(name, true);
      else if (name === 'codes') {
        // Exactly two values: the two consecutive codes of a resync.
        const c1 = args[i + 1];
        const c2 = args[i + 2];
        if (c1 === undefined || c2 === undefined) throw new MfaError('--codes には2つのコードが必要です / --codes needs two codes');
        opts.set('code1', c1);
        opts.set('code2', c2);
        i += 2;
      }
      else {
        const v = args[i + 1];
        if (v === undefined) throw new MfaError(`--${name} には値が必要です / needs a value`);
        opts.set(name, v);
        i++;
      }
    } else pos.push(a);
  }
  return { pos, opts };
}

function need(opts: Opts, name: string): string {
  const v = opts.get(name);
  if (typeof v !== 'string' || v === '') throw new MfaError(`--${name} が必要です / --${name} is required`);
  return v;
}

const out = (s: string) => process.stdout.write(s + '\n');

async function printEnrolment(ctx: ConsoleContext, e: { user: string; secret: string; uri: string; recoveryCodes: string[] }, json: boolean): Promise<void> {
  if (json) {
    out(JSON.stringify({ user: e.user, secret: e.secret, uri: e.uri, recoveryCodes: e.recoveryCodes }));
    return;
  }
  out(`利用者 / user: ${e.user}   発行者 / issuer: ${ctx.organisation()}`);
  out(await QRCode.toString(e.uri, { type: 'terminal', small: true, errorCorrectionLevel: 'M' }));
  out(`秘密鍵 / secret: ${e.secret}`);
  out(`URI: ${e.uri}`);
  out('回復コード(各1回のみ・安全に保管) / recovery codes (one use each, keep them safe):');
  for (const c of e.recoveryCodes) out(`  ${c}`);
  out(`次に: sekimori-console mfa confirm --user ${e.user} --code <6桁> / next: confirm with a first code`);
}

async function run(args: string[], openCtx: () => ConsoleContext): Promise<number> {
  let parsed: { pos: string[]; opts: Opts };
  try {
    parsed = parse(args);
  } catch (e) {
    process.stderr.write((e as Error).message + '\n' + USAGE + '\n');
    return 2;
  }
  const { pos, opts } = parsed;
  const sub = pos[0];
  if (!sub || sub === 'help') {
    process.stderr.write(USAGE + '\n');
    return sub ? 0 : 2;
  }
  const actor = `cli:${userInfo().username}`;
  const json = opts.get('json') === true;
  let ctx: ConsoleContext | null = null;
  try {
    ctx = openCtx();
    switch (sub) {
      case 'enroll':
      case 'reset': {
        const e = enrollUser(ctx, need(opts, 'user'), actor, { reset: sub === 'reset' });
        await printEnrolment(ctx, e, json);
        return 0;
      }
      case 'confirm': {
        const ok = confirmUser(ctx, need(opts, 'user'), need(opts, 'code'), actor);
        out(ok ? '登録を完了しました / confirmed' : 'コードが正しくありません / wrong code');
        return ok ? 0 : 1;
      }
      case 'disable':
      case 'enable':
        setDisabled(ctx, need(opts, 'user'), sub === 'disable', actor);
        out(sub === 'disable' ? '無効化しました / disabled' : '有効化しました / enabled');
        return 0;
      case 'unlock':
        unlockUser(ctx, need(opts, 'user'), actor);
        out('ロックを解除しました / unlocked');
        return 0;
      case 'import': {
        const { rows, errors, format } = readTokenFile(opts);
        if (errors.length) {
          for (const e of errors.slice(0, 50)) process.stderr.write(e + '\n');
          if (errors.length > 50) process.stderr.write(`…ほか ${errors.length - 50} 件 / … ${errors.length - 50} more\n`);
          process.stderr.write('取込を中止しました(1件も登録していません) / import aborted, nothing imported\n');
          return 1;
        }
        if (rows.length === 0) throw new MfaError('トークンがありません / no tokens in the file');
        const r = importTokenRows(ctx, rows, actor, opts.get('replace') === true, format);
        const n = r.assigned + r.unassigned;
        out(
          json
            ? JSON.stringify({ imported: n, assigned: r.assigned, unassigned: r.unassigned })
            : `${n} 件のトークンを取り込みました(割当済み ${r.assigned}・未割当 ${r.unassigned}) / imported ${n} tokens (${r.assigned} assigned, ${r.unassigned} unassigned: mfa assign-token)`,
        );
        return 0;
      }
      case 'tokens': {
        const stock = listStock(ctx);
        if (json) out(JSON.stringify(stock));
        else for (const t of stock) out(`${t.serial.padEnd(20)} ${t.type} ${t.algorithm} ${t.digits}${t.type === 'totp' ? ` ${t.period}s` : ` counter=${t.counter}`}`);
        return 0;
      }
      case 'assign-token': {
        const user = need(opts, 'user');
        const serial = need(opts, 'serial');
        assignToken(ctx, user, serial, actor, opts.get('replace') === true);
        out(json ? JSON.stringify({ user, serial }) : `${serial} を ${user} に割り当てました / token ${serial} assigned to ${user}`);
        return 0;
      }
      case 'resync': {
        const user = need(opts, 'user');
        const r = resyncUser(ctx, user, need(opts, 'code1'), need(opts, 'code2'), actor);
        if (json) out(JSON.stringify(r));
        else if (r.ok) out(`再同期しました / resynchronised${r.drift !== undefined ? ` (drift ${r.drift} steps)` : ''}`);
        else
          out(
            r.reason === 'malformed'
              ? '認証コードの形式が正しくありません / malformed code'
              : '連続する2つのコードが見つかりません / the two codes were not found as consecutive codes',
          );
        return r.ok ? 0 : 1;
      }
      case 'recovery': {
        const count = Number(opts.get('count') ?? 10);
        if (!Number.isInteger(count) || count < 1 || count > 50) throw new MfaError('--count は1〜50 / --count must be 1–50');
        const user = need(opts, 'user');
        const codes = newRecoveryCodes(ctx, user, actor, count);
        out(json ? JSON.stringify({ user, recoveryCodes: codes }) : codes.join('\n'));
        return 0;
      }
      case 'assign':
        assign(ctx, need(opts, 'user'), need(opts, 'terminal'), actor, opts.get('remove') === true);
        out(opts.get('remove') === true ? '割当を解除しました / unassigned' : '割り当てました / assigned');
        return 0;
      case 'list': {
        const users = listUsers(ctx);
        if (json) out(JSON.stringify(users));
        else for (const u of users) out(`${u.user.padEnd(20)} ${u.status.padEnd(9)} ${u.kind.padEnd(9)} ${u.type} ${u.serial ? `serial=${u.serial} ` : ''}${u.locked ? 'LOCKED ' : ''}recovery=${u.recoveryLeft} terminals=${u.terminals.join(',')}`);
        return 0;
      }
      case 'client': {
        if (pos[1] !== 'add') throw new MfaError('mfa client add --name NAME [--address IP]');
        const address = opts.get('address');
        const cred = addValidateClient(ctx, need(opts, 'name'), typeof address === 'string' ? address : null, actor);
        out(
          json
            ? JSON.stringify({ terminal: `win:${need(opts, 'name')}`, credential: cred, address: typeof address === 'string' ? address : null })
            : `資格情報(Credential Provider の default_realm に設定・再表示不可) / credential for the Credential Provider's default_realm (shown once):\n${cred}\n` +
                (typeof address === 'string'
                  ? `レルムなしの要求 (send_upn=1 の UPN) は送信元 ${address} で識別します / requests without a realm (send_upn=1 with a UPN) are identified by the source address ${address}`
                  : 'send_upn=1 で UPN を送る場合は --address で端末のアドレスを登録してください / to let send_upn=1 send UPNs, register the terminal\'s address with --address'),
        );
        return 0;
      }
      default:
        process.stderr.write(`unknown subcommand: ${sub}\n${USAGE}\n`);
        return 2;
    }
  } catch (e) {
    if (e instanceof MfaError) {
      process.stderr.write(e.message + '\n');
      return 1;
    }
    throw e;
  } finally {
    ctx?.close();
  }
}

/** Reads --file in the chosen --format (default: by extension, .xml/.pskcxml = pskc, else csv). */
function readTokenFile(opts: Opts): ParseResult & { format: string } {
  const file = need(opts, 'file');
  const fmtOpt = opts.get('format');
  const format = typeof fmtOpt === 'string' ? fmtOpt : /\.(pskcxml|xml)$/i.test(file) ? 'pskc' : 'csv';
  const pskFile = opts.get('psk-file');
  const pwFile = opts.get('password-file');
  if (opts.get('psk') !== undefined) throw new MfaError('--psk は使えません。鍵は --psk-file でファイルから渡してください / --psk is not accepted: pass the key in a file with --psk-file');
  if (format !== 'pskc' && (pskFile !== undefined || pwFile !== undefined)) throw new MfaError('--psk-file / --password-file は pskc のみ / only for --format pskc');
  const textIn = readFileSync(file, 'utf8');
  if (format === 'csv') return { ...parseSekimoriCsv(textIn), format };
  if (format === 'oath-csv') return { ...parseOathCsv(textIn), format };
  if (format !== 'pskc') throw new MfaError('--format は csv, oath-csv, pskc のいずれか / --format must be csv, oath-csv or pskc');
  let psk: Buffer | undefined;
  if (pskFile !== undefined) {
    // The key from a file, never the command line (which other local users can read in /proc).
    if (typeof pskFile !== 'string') throw new MfaError('--psk-file にはファイルが必要です / --psk-file needs a file');
    const hex = readFileSync(pskFile, 'utf8').trim();
    if (!/^([0-9a-fA-F]{32}|[0-9a-fA-F]{48}|[0-9a-fA-F]{64})$/.test(hex)) throw new MfaError('--psk-file の中身は16/24/32バイトの16進 / --psk-file must hold 16, 24 or 32 bytes of hex');
    psk = Buffer.from(hex, 'hex');
  }
  let password: string | undefined;
  if (pwFile !== undefined) {
    // From a file, never the command line (which other local users can read in /proc).
    if (typeof pwFile !== 'string') throw new MfaError('--password-file にはファイルが必要です / --password-file needs a file');
    password = readFileSync(pwFile, 'utf8').replace(/\r?\n$/, '');
  }
  return { ...parsePskc(textIn, { ...(psk ? { psk } : {}), ...(password !== undefined ? { password } : {}) }), format };
}

export const mfaCommand: CliCommand = {
  summary: 'mfa enroll|confirm|reset|disable|enable|unlock|import|tokens|assign-token|resync|recovery|assign|list|client  多要素認証(TOTP/HOTP) / staff MFA',
  run,
};
