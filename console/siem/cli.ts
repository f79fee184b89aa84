/**
 * `sekimori-console siem set|status|off --data DIR`: where the console forwards its events (issue 17).
 * The serving console picks a change up within about a second (the forwarder re-reads the config).
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { t } from '../../protocol/i18n.js';
import { safeText } from '../../protocol/text.js';
import { withConsole, type CliCommand, type ConsoleContext } from '../module.js';
import { DEFAULT_FACILITY, facilityCode, facilityName } from './format.js';
import { targetText } from './forwarder.js';
import { backlog, disableConfig, getConfig, getState, putConfig } from './store.js';

const dataOpt = { data: { type: 'string' as const, default: process.env.SEKIMORI_CONSOLE_DATA ?? '/var/lib/sekimori-console' } };
const actor = () => `cli:${userInfo().username}`;

/** "HOST:PORT" / "[v6]:PORT" → parts, or an error text. */
export function parseTarget(s: string): { host: string; port: number } | string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]{1,253}):(\d{1,5})$/.exec(s);
  if (!m) return t(`--target は HOST:PORT で指定してください: ${safeText(s, 80)}`, `--target must be HOST:PORT, got ${safeText(s, 80)}`);
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return t(`ポート番号が範囲外です: ${port}`, `port out of range: ${port}`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

function readPem(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(t(`${what} を読めません: ${path} (${(e as Error).message})`, `cannot read ${what}: ${path} (${(e as Error).message})`));
  }
}

export interface SiemStatus {
  enabled: boolean;
  target: string | null;
  name: string | null;
  facility: string | null;
  clientCert: boolean;
  state: string;
  cursor: number;
  backlog: number;
  forwarded: number;
  lastError: string | null;
  lastErrorAt: string | null;
  lastOkAt: string | null;
}

export function siemStatus(ctx: Pick<ConsoleContext, 'db'>): SiemStatus {
  const c = getConfig(ctx.db);
  const s = getState(ctx.db);
  return {
    enabled: c?.enabled ?? false,
    target: c ? targetText(c) : null,
    name: c?.name ?? null,
    facility: c ? facilityName(c.facility) : null,
    clientCert: c?.clientCertPem != null,
    state: c?.enabled ? s.state : 'off',
    cursor: s.cursorRid,
    backlog: backlog(ctx.db, s.cursorRid),
    forwarded: s.forwarded,
    lastError: s.lastError,
    lastErrorAt: s.lastErrorAt,
    lastOkAt: s.lastOkAt,
  };
}

function set(args: string[], open: () => ConsoleContext): number {
  const { values } = parseArgs({
    args,
    options: {
      ...dataOpt,
      target: { type: 'string' },
      ca: { type: 'string' },
      name: { type: 'string' },
      'client-cert': { type: 'string' },
      'client-key': { type: 'string' },
      facility: { type: 'string', default: DEFAULT_FACILITY },
      json: { type: 'boolean', default: false },
    },
  });
  if (!values.target || !values.ca) throw new Error(t('--target HOST:PORT と --ca FILE が必要です', '--target HOST:PORT and --ca FILE are required'));
  const target = parseTarget(values.target);
  if (typeof target === 'string') throw new Error(target);
  const facility = facilityCode(values.facility);
  if (facility === null) throw new Error(t(`不明なファシリティ: ${safeText(values.facility, 32)}`, `unknown facility: ${safeText(values.facility, 32)}`));
  if (!!values['client-cert'] !== !!values['client-key']) throw new Error(t('--client-cert と --client-key は両方指定してください', '--client-cert and --client-key go together'));
  // Fail closed at configuration time: a CA that does not parse would make every connection fail later.
  const caPem = readPem(values.ca, 'CA');
  let caFingerprint: string;
  try {
    caFingerprint = new X509Certificate(caPem).fingerprint256.replace(/:/g, '').toLowerCase();
  } catch (e) {
    throw new Error(t(`CA 証明書を読み取れません: ${(e as Error).message}`, `CA certificate does not parse: ${(e as Error).message}`));
  }
  const name = values.name ?? target.host;
  if (!isIP(name) && !/^[A-Za-z0-9*.-]{1,253}$/.test(name)) throw new Error(t(`--name が不正です: ${safeText(name, 80)}`, `invalid --name: ${safeText(name, 80)}`));
  let clientCertPem: string | null = null;
  let clientKeyPem: string | null = null;
  if (values['client-cert'] && values['client-key']) {
    clientCertPem = readPem(values['client-cert'], t('クライアント証明書', 'client certificate'));
    clientKeyPem = readPem(values['client-key'], t('クライアント秘密鍵', 'client key'));
    try {
      const cert = new X509Certificate(clientCertPem);
      if (!cert.checkPrivateKey(createPrivateKey(clientKeyPem))) throw new Error(t('証明書と秘密鍵が対応していません', 'certificate and key do not match'));
    } catch (e) {
      throw new Error(t(`クライアント証明書: ${(e as Error).message}`, `client certificate: ${(e as Error).message}`));
    }
  }
  return withConsole(open, (ctx) => {
    const at = new Date().toISOString();
    const who = actor();
    ctx.db.transaction(() => {
      ctx.recordEvent({
        type: 'admin.siem_configured',
        user: who,
        data: { target: targetText(target), name, facility: facilityName(facility), clientCert: clientCertPem !== null, caFingerprint },
      });
      putConfig(ctx.db, {
        enabled: true,
        host: target.host,
        port: target.port,
        name,
        caPem,
        clientCertPem,
        clientKeySealed: clientKeyPem === null ? null : ctx.seal(clientKeyPem),
        facility,
        updatedAt: at,
        updatedBy: who,
      });
    })();
    const st = siemStatus(ctx);
    if (values.json) process.stdout.write(JSON.stringify(st) + '\n');
    else process.stdout.write(`${t('SIEM転送を設定しました', 'SIEM forwarding set')}: ${st.target} (${t('証明書名', 'name')} ${name}, ${st.facility}) ${t('未転送', 'backlog')} ${st.backlog}\n`);
    return 0;
  });
}

function status(args: string[], open: () => ConsoleContext): number {
  const { values } = parseArgs({ args, options: { ...dataOpt, json: { type: 'boolean', default: false } } });
  return withConsole(open, (ctx) => {
    const s = siemStatus(ctx);
    if (values.json) {
      process.stdout.write(JSON.stringify(s, null, 2) + '\n');
      return 0;
    }
    const lines = [
      `${t('状態', 'state')}: ${s.enabled ? s.state : t('停止 (off)', 'off')}`,
      `${t('転送先', 'target')}: ${s.target ?? '-'}  ${t('証明書名', 'name')}: ${s.name ?? '-'}  ${t('ファシリティ', 'facility')}: ${s.facility ?? '-'}  ${t('クライアント証明書', 'client certificate')}: ${s.clientCert ? t('あり', 'yes') : t('なし', 'no')}`,
      `${t('カーソル', 'cursor')}: ${s.cursor}  ${t('未転送', 'backlog')}: ${s.backlog}  ${t('転送済み', 'forwarded')}: ${s.forwarded}  ${t('最終成功', 'last ok')}: ${s.lastOkAt ?? '-'}`,
      `${t('最後のエラー', 'last error')}: ${s.lastError ? `${safeText(s.lastError, 300)} (${s.lastErrorAt})` : '-'}`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  });
}

function off(args: string[], open: () => ConsoleContext): number {
  parseArgs({ args, options: { ...dataOpt } }); // refuses unknown options
  return withConsole(open, (ctx) => {
    const c = getConfig(ctx.db);
    const changed = ctx.db.transaction(() => {
      if (!c?.enabled) return false;
      ctx.recordEvent({ type: 'admin.siem_disabled', user: actor(), data: { target: targetText(c) } });
      return disableConfig(ctx.db, new Date().toISOString(), actor());
    })();
    process.stdout.write(changed ? `${t('SIEM転送を停止しました', 'SIEM forwarding turned off')}\n` : `${t('SIEM転送は設定されていません', 'SIEM forwarding was not on')}\n`);
    return 0;
  });
}

export const siemCommand: CliCommand = {
  summary:
    'siem set --target HOST:PORT --ca FILE [--name NAME] [--client-cert FILE --client-key FILE] [--facility authpriv|local0…] | siem status [--json] | siem off   SIEM転送 (RFC 5424 over TLS) / SIEM forwarding',
  run(args, open) {
    const [sub, ...rest] = args;
    if (sub === 'set') return set(rest, open);
    if (sub === 'status') return status(rest, open);
    if (sub === 'off') return off(rest, open);
    process.stderr.write(`${this.summary}\n`);
    return 2;
  },
};
