/**
 * Debian's rsyslog as the SIEM of bench/siem and the siem tier (test/e2e/siem), and agent-style events
 * written into a console's store the way ingest writes them: certificates made with openssl, an
 * unprivileged config in a temp folder (imtcp + gtls, TLS only, client certificate checked by
 * name), a template writing each message's fields as one JSON line. Loopback only, every wait bounded.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openDatabase } from '../console/core/db.js';
import { insertEventStatement } from '../console/core/events.js';
import { chainEvent, genesisHash, type SekimoriEvent } from '../protocol/events.js';

/** Polls `f` until it returns a value, at most `timeoutMs`. */
async function waitFor<T>(what: string, f: () => T | null | undefined, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v !== null && v !== undefined && (v as unknown) !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const GTLS_MODULE = ['/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so', '/usr/lib/aarch64-linux-gnu/rsyslog/lmnsd_gtls.so', '/usr/lib/rsyslog/lmnsd_gtls.so'];
export const haveGtls = () => GTLS_MODULE.some((p) => existsSync(p));
export const INSTALL_HINT = 'apt-get install rsyslog rsyslog-gnutls openssl (or: bash scripts/setup.sh --test)';

export interface Certs {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** A CA, the SIEM's certificate (siem.test, 127.0.0.1) and the console's client certificate (sekimori-console). */
export function makeCerts(dir: string): Certs {
  const o = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe', timeout: 30_000 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  o(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Test SIEM CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const leaf = (name: string, san: string, eku: string) => {
    o(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${san.split(',')[0]!.replace(/^DNS:/, '')}`]);
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=${eku}\nkeyUsage=critical,digitalSignature\n`);
    o(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`]);
  };
  leaf('srv', 'DNS:siem.test,IP:127.0.0.1', 'serverAuth');
  leaf('cli', 'DNS:sekimori-console', 'clientAuth');
  return { ca: join(dir, 'ca.pem'), serverCert: join(dir, 'srv.pem'), serverKey: join(dir, 'srv.key'), clientCert: join(dir, 'cli.pem'), clientKey: join(dir, 'cli.key') };
}

/** What the README shows a municipality (plus the test's paths): rsyslog receiving Sekimori over TLS. */
export function rsyslogConf(dir: string, c: Certs, port: number, out: string): string {
  return `global(workDirectory="${dir}" maxMessageSize="256k"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile="${c.ca}" defaultNetstreamDriverCertFile="${c.serverCert}" defaultNetstreamDriverKeyFile="${c.serverKey}"
  parser.escapeControlCharactersOnReceive="off")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="x509/name" permittedPeer=["sekimori-console"])
template(name="sekimori" type="list" option.jsonf="on") {
  property(outname="pri" name="pri" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="received" name="timegenerated" dateFormat="rfc3339" format="jsonf")
}
input(type="imtcp" port="${port}" address="127.0.0.1" listenPortFileName="${dir}/port")
action(type="omfile" file="${out}" template="sekimori")
`;
}

export interface Received {
  pri: string;
  hostname: string;
  app: string;
  procid: string;
  msgid: string;
  timestamp: string;
  sd: string;
  msg: string;
  /** When rsyslog received it (timegenerated). */
  received: string;
}

export interface Rsyslog {
  port: number;
  out: string;
  proc: ChildProcess;
  stop(): Promise<void>;
  received(): Received[];
  log(): string;
}

/** Starts `rsyslogd -n -f CONF -i PIDFILE`; port 0 = any (rsyslog writes the one it took). */
export async function startRsyslog(dir: string, certs: Certs, port = 0): Promise<Rsyslog> {
  const out = join(dir, 'out.jsonl');
  const conf = join(dir, 'rsyslog.conf');
  const portFile = join(dir, 'port');
  writeFileSync(portFile, '');
  writeFileSync(conf, rsyslogConf(dir, certs, port, out));
  const proc = spawn('rsyslogd', ['-n', '-f', conf, '-i', join(dir, 'rsyslogd.pid')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout?.on('data', (b: Buffer) => (log += b.toString()));
  proc.stderr?.on('data', (b: Buffer) => (log += b.toString()));
  // rsyslog writes the port file only for port 0; a fixed port (a restart) is probed instead.
  let open = false;
  const bound = await waitFor(
    'rsyslog to listen',
    () => {
      if (proc.exitCode !== null) throw new Error(`rsyslogd exited ${proc.exitCode}: ${log}`);
      if (port !== 0) {
        const probe = connect({ host: '127.0.0.1', port });
        probe.once('connect', () => ((open = true), probe.destroy()));
        probe.once('error', () => probe.destroy());
        return open ? port : null;
      }
      const t = readFileSync(portFile, 'utf8').trim();
      return t ? Number(t) : null;
    },
    30_000,
    200,
  );
  return {
    port: bound,
    out,
    proc,
    log: () => log,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const gone = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await gone;
      clearTimeout(t);
    },
    received: () => readReceived(out),
  };
}

export function readReceived(out: string): Received[] {
  if (!existsSync(out)) return [];
  const text = readFileSync(out, 'utf8');
  const lines = text.split('\n');
  lines.pop(); // a line still being written has no newline yet
  return lines.filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Received);
}


/** Agent-style events written into the console's store as ingest writes them (same statement, own chain). */
export function insertAgentEvents(
  dbPath: string,
  agent: { id: string; hostname: string },
  count: number,
  data: (i: number) => { type: string; severity: string; user: string | null; data: Record<string, unknown> },
): void {
  const db: Database.Database = openDatabase(dbPath);
  try {
    db.transaction(() => {
      db.prepare(
        `INSERT OR IGNORE INTO agents (id, hostname, cert_fingerprint, enrolled_at, last_seen, status) VALUES (?, ?, 'fp', ?, ?, 'online')`,
      ).run(agent.id, agent.hostname, new Date().toISOString(), new Date().toISOString());
      const head = db.prepare('SELECT seq, hash FROM events WHERE agent_id = ? ORDER BY seq DESC LIMIT 1').get(agent.id) as { seq: number; hash: string } | undefined;
      let prev = head?.hash ?? genesisHash(agent.id);
      let seq = head?.seq ?? 0;
      const ins = insertEventStatement(db);
      const now = Date.now();
      for (let i = 0; i < count; i++) {
        const d = data(i);
        const e: SekimoriEvent = chainEvent(prev, {
          id: crypto.randomUUID(),
          agentId: agent.id,
          seq: ++seq,
          ts: new Date(now - 60_000 + (i % 1000)).toISOString(),
          type: d.type as SekimoriEvent['type'],
          severity: d.severity as SekimoriEvent['severity'],
          user: d.user,
          data: d.data,
        });
        prev = e.hash;
        ins.run({ ...e, data: JSON.stringify(e.data), terminalId: agent.id, chain: 'ok', receivedAt: new Date(now).toISOString(), agentTs: null });
      }
    })();
  } finally {
    db.close();
  }
}
