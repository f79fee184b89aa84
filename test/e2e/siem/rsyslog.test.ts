/**
 * SIEM tier (issue 17): the real console (`sekimori-console serve`, built dist/) forwards every
 * stored event to Debian's rsyslog (imtcp + gtls: TLS, the console's client certificate checked by
 * name) on loopback; rsyslog's own parser splits each message and a template writes the fields.
 * Every stored row must arrive exactly (MSGID, every structured-data param, the Japanese MSG), in
 * stored order, also across a console SIGKILL mid-forwarding and an rsyslog restart: duplicates
 * only for events after the cursor stored when the fault happened (the documented at-least-once
 * window), identifiable by eventId, and nothing missing.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../../console/core/db.js';
import { eventParams, formatEvent, frame, parseStructuredData, printUsAscii, SD_ID, type ForwardEvent } from '../../../console/siem/format.js';
import { nextBatch } from '../../../console/siem/store.js';
import { REPLAY_BYTES, REPLAY_MS } from '../../../console/siem/cursor.js';
import { describeEvent } from '../../../protocol/event-text.js';
import { requireTools } from '../tools.js';
import { startConsole, tempDir, waitFor, type TestConsole } from '../../integration/harness.js';
import { haveGtls, insertAgentEvents, INSTALL_HINT, makeCerts, readReceived, startRsyslog, type Certs, type Received, type Rsyslog } from './rsyslog.js';

const tools = requireTools('siem (rsyslog over TLS)', ['rsyslogd', 'openssl'], INSTALL_HINT, { missing: haveGtls() ? [] : ['rsyslog-gnutls (lmnsd_gtls.so)'] });

const AGENT = { id: '6b1f3c2a-5d4e-4f60-8a7b-9c0d1e2f3a4b', hostname: 'PC KOSEKI "07"] 戸籍' };
const HOSTILE = ['Ultra] [evil@1 x="y"]', 'a\\b"c', '改行\nタブ\tESC\u001b[31m', 'a\uD800b', 'USBメモリ「総務課」'];

function usbData(i: number): Record<string, unknown> {
  return {
    kind: 'usb', mode: 'enforce', port: '1-2', busnum: 1, devnum: 5, vendorId: '0781', productId: '5581', bcdDevice: '0100', deviceClass: '00', interfaceClasses: ['08'],
    interfaces: [{ number: 0, classes: ['08/06/50'], allow: false, rule: 'class:08' }], manufacturer: '株式会社"サンプル"\\', product: i % 50 === 3 ? 'x]'.repeat(5000) : HOSTILE[i % HOSTILE.length]!,
    serial: `SN-${i}]`, serialHex: null, descriptorHash: 'a'.repeat(64), rule: 'class:08', partial: false, readonly: false, exceptionId: null,
  };
}
const gen = (i: number) => ({ type: i % 3 === 2 ? 'agent.started' : 'usb.blocked', severity: i % 3 === 2 ? 'info' : 'warning', user: i % 2 ? '山田 太郎' : null, data: i % 3 === 2 ? { version: '1.0.0', pid: i } : usbData(i) });

/** Where duplicates may start (a line of rsyslog's output) and which: above a stored cursor, or received since a time. */
interface Window {
  fromLine: number;
  cursor: number;
  since?: number;
}

describe.skipIf(!tools.ok)('SIEM forwarding to a real rsyslog over TLS (RFC 5425)', () => {
  let dir = '';
  let certs: Certs;
  let siem: Rsyslog;
  let c: TestConsole;
  let dbPath = '';

  const stored = (): ForwardEvent[] => {
    const db = openDatabase(dbPath);
    try {
      return nextBatch(db, 0, 1_000_000);
    } finally {
      db.close();
    }
  };
  const stateRow = (): { cursor_rid: number; state: string } => {
    const db = openDatabase(dbPath);
    try {
      return db.prepare('SELECT cursor_rid, state FROM siem_state WHERE id = 1').get() as { cursor_rid: number; state: string };
    } finally {
      db.close();
    }
  };
  const idOf = (r: Received): string => {
    const sd = parseStructuredData(r.sd);
    return sd?.[0]?.params.find(([k]) => k === 'eventId')?.[1] ?? '';
  };
  const allArrived = (rows: ForwardEvent[]) => {
    const got = new Set(readReceived(siem.out).map(idOf));
    return rows.every((e) => got.has(e.id));
  };

  /** Every stored row arrived exactly; first arrivals in rid order; duplicates only above `windowFrom` (per phase). */
  function check(rows: ForwardEvent[], received: Received[], windows: Window[]) {
    const byId = new Map(rows.map((e) => [e.id, e]));
    const seen = new Map<string, number>();
    const cache = new Map<Window, Set<string>>();
    const frameLen = (e: ForwardEvent) => frame(formatEvent(e, { facility: 10, consoleHostname: osHostname() })).length;
    /** The events received before the fault within REPLAY_MS of it or among its newest REPLAY_BYTES. */
    const replayable = (w: Window): Set<string> => {
      if (cache.has(w)) return cache.get(w)!;
      const ids = new Set<string>();
      let bytes = 0;
      for (let i = w.fromLine - 1; i >= 0; i--) {
        const rid = idOf(received[i]!);
        const ev = byId.get(rid);
        if (!ev) continue;
        const inTime = Date.parse(received[i]!.received) >= w.since!;
        if (!inTime && bytes >= REPLAY_BYTES) break;
        ids.add(rid);
        bytes += frameLen(ev);
      }
      cache.set(w, ids);
      return ids;
    };
    let lastRid = 0;
    const console = osHostname();
    for (const [line, r] of received.entries()) {
      const id = idOf(r);
      const e = byId.get(id);
      expect(e, `line ${line}: an event the console does not have (${id})`).toBeDefined();
      if (!e) continue;
      const first = !seen.has(id);
      seen.set(id, (seen.get(id) ?? 0) + 1);
      if (first) {
        expect(e.rid, `stored order: ${id}`).toBeGreaterThan(lastRid);
        lastRid = e.rid;
      } else {
        // A duplicate: allowed only for an event after the cursor stored when a fault began, sent again after it.
        const w = [...windows].reverse().find((x) => line >= x.fromLine);
        expect(w, `line ${line}: duplicate of ${id} (rid ${e.rid}) outside any fault window`).toBeDefined();
        if (w!.since === undefined) expect(e.rid, `line ${line}: duplicate of rid ${e.rid} at or below the stored cursor ${w?.cursor}`).toBeGreaterThan(w!.cursor);
        // A SIEM that failed: what it received in the replay window (REPLAY_MS or the newest REPLAY_BYTES) before it stopped is sent again.
        else expect(replayable(w!).has(id), `line ${line}: duplicate of rid ${e.rid} outside the replay window`).toBe(true);
      }
      const sd = parseStructuredData(r.sd);
      expect(sd).not.toBeNull();
      expect(sd!.map((x) => x.id)).toEqual([SD_ID]);
      const want = eventParams(e).map(([k, v]) => [k, v.toWellFormed()]);
      expect(sd![0]!.params, `params of ${e.type} rid ${e.rid}`).toEqual(want);
      expect(r.msgid).toBe(printUsAscii(e.type, 32));
      expect(r.app).toBe('sekimori');
      expect(r.timestamp).toBe(e.ts);
      expect(r.procid).toBe(e.agentId === 'console' ? '-' : e.agentId);
      expect(r.hostname).toBe(e.agentId === 'console' ? printUsAscii(console, 255) : printUsAscii(e.hostname ?? '', 255));
      const text = describeEvent({ type: e.type, user: e.user, data: e.data }, 'ja', { terminal: e.agentId === 'console' ? null : (e.hostname ?? e.terminalId) });
      expect(r.msg).toBe('\uFEFF' + text.toWellFormed());
      expect(Number(r.pri) & 7).toBe({ critical: 2, warning: 4, notice: 5, info: 6 }[e.severity as 'info']);
      expect(Number(r.pri) >> 3).toBe(10); // authpriv
    }
    const missing = rows.filter((e) => !seen.has(e.id));
    expect(missing.map((e) => `${e.rid}:${e.type}`)).toEqual([]);
    return { duplicates: [...seen.values()].filter((n) => n > 1).length };
  }

  beforeAll(async () => {
    dir = tempDir('siem');
    mkdirSync(join(dir, 'rsyslog'));
    certs = makeCerts(dir);
    siem = await startRsyslog(join(dir, 'rsyslog'), certs);
    c = await startConsole();
    dbPath = join(c.dataDir, 'console.db');
  }, 90_000);

  afterAll(async () => {
    await siem?.stop();
    await c?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const windows: Window[] = [];

  it('forwards every stored event exactly, hostile text and Japanese intact', async () => {
    insertAgentEvents(dbPath, AGENT, 60, gen);
    const set = c.cli(['siem', 'set', '--target', `127.0.0.1:${siem.port}`, '--ca', certs.ca, '--name', 'siem.test', '--client-cert', certs.clientCert, '--client-key', certs.clientKey]);
    expect(set.code, set.stderr).toBe(0);
    const rows = await waitFor('all events at rsyslog', () => {
      const r = stored();
      return allArrived(r) ? r : null;
    }, 60_000);
    const types = new Set(rows.map((e) => e.type));
    expect(types).toContain('admin.siem_configured'); // the console's own events
    expect(types).toContain('usb.blocked'); // agent events
    const { duplicates } = check(rows, siem.received(), windows);
    expect(duplicates).toBe(0); // no fault, no duplicate
    const st = await waitFor('cursor at the end', () => {
      const s = c.json<{ backlog: number; state: string; cursor: number }>(['siem', 'status']);
      return s.backlog === 0 ? s : null;
    }, 30_000);
    expect(st.state).toBe('forwarding');
  }, 120_000);

  it('console SIGKILL mid-forwarding: resumes from the stored cursor, nothing missing', async () => {
    const before = siem.received().length;
    insertAgentEvents(dbPath, AGENT, 5000, gen);
    // Mid-forwarding: some of the new events arrived, the stored cursor is behind the newest row.
    await waitFor('forwarding under way', () => siem.received().length > before + 100, 60_000, 20);
    await c.kill9();
    const cursor = stateRow().cursor_rid;
    const maxRid = stored().at(-1)!.rid;
    expect(cursor).toBeLessThan(maxRid);
    windows.push({ fromLine: siem.received().length, cursor });
    await c.start();
    const rows = await waitFor('all events at rsyslog after the restart', () => {
      const r = stored();
      return allArrived(r) ? r : null;
    }, 120_000, 250);
    const { duplicates } = check(rows, siem.received(), windows);
    process.stderr.write(`[siem tier] SIGKILL: stored cursor ${cursor} of ${maxRid} rows at the kill; ${duplicates} events delivered twice (all above the cursor)\n`);
  }, 240_000);

  it('rsyslog restart mid-forwarding: an outage event, reconnect, nothing missing', async () => {
    await waitFor('cursor settled', () => c.json<{ backlog: number }>(['siem', 'status']).backlog === 0, 60_000);
    const port = siem.port;
    const before = siem.received().length;
    insertAgentEvents(dbPath, AGENT, 3000, gen);
    await waitFor('forwarding under way', () => siem.received().length > before + 100, 60_000, 20);
    const stopAt = Date.now();
    await siem.stop();
    const cursor = stateRow().cursor_rid;
    await waitFor('console notices the outage', () => stateRow().state === 'down', 30_000);
    insertAgentEvents(dbPath, AGENT, 200, gen); // written while the SIEM is away
    siem = await startRsyslog(join(dir, 'rsyslog'), certs, port);
    windows.push({ fromLine: readReceived(siem.out).length, cursor, since: stopAt - REPLAY_MS - 2000 });
    const rows = await waitFor('all events at rsyslog after its restart', () => {
      const r = stored();
      return r.some((e) => e.type === 'console.siem_resumed') && allArrived(r) ? r : null;
    }, 120_000, 250);
    const types = rows.map((e) => e.type);
    expect(types.filter((t) => t === 'console.siem_stopped')).toHaveLength(1);
    const { duplicates } = check(rows, siem.received(), windows);
    process.stderr.write(`[siem tier] rsyslog restart: ${duplicates} events delivered twice in total (phase 3: each received within the replay window — 10 s or the newest 16 MiB — before rsyslog stopped)\n`);
    const status = c.cli(['siem', 'status']);
    expect(status.stdout).toMatch(/forwarding/);
  }, 240_000);
});
