/**
 * The real producers' output passes its declaration (protocol/event-data.ts): a real agent runs,
 * reports and stops; the console enrols, grants, revokes. Every event the console then holds is
 * checked against its type's declaration, and ingest marked none of them.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventDataErrors } from '../../protocol/event-data.js';
import { enrollAgent, startConsole, waitFor, type TestAgent, type TestConsole } from '../integration/harness.js';

describe('what a real agent and console write matches the declarations', () => {
  let c: TestConsole;
  let a: TestAgent;
  beforeAll(async () => {
    c = await startConsole({ policy: { agent: { heartbeatSeconds: 1 } } });
    a = await enrollAgent(c, { start: true });
    await waitFor('agent.started and agent.policy_applied at the console', () => {
      const types = new Set(c.events(['--agent', a.agentId]).map((e) => e.type));
      return types.has('agent.started') && types.has('agent.policy_applied') ? true : null;
    }, 60_000);
    c.json(['usb-exception', 'grant', '--agent', a.agentId, '--device', '0781:5567#41421b4344ff', '--for', '1h', '--reason', 'r']);
    c.json(['usb-exception', 'request', '--agent', a.agentId, '--device', '0781:5567:EXC0001', '--for', '1h', '--reason', 'r', '--by', 'it-tanaka']);
    const id = c.json<{ id: string }[]>(['usb-exception', 'list', '--agent', a.agentId])[0]!.id;
    expect(c.cli(['usb-exception', 'revoke', id]).code).toBe(0);
    await a.stop();
    await waitFor('agent.stopped at the console', () => (c.events(['--agent', a.agentId, '--type', 'agent.stopped']).length ? true : null), 30_000);
  }, 180_000);
  afterAll(async () => {
    await a?.cleanup();
    await c?.cleanup();
  });

  it('every stored event passes its declaration; nothing was marked', () => {
    const events = c.events([]);
    const types = new Set(events.map((e) => e.type));
    for (const t of ['agent.enrolled', 'agent.started', 'agent.policy_applied', 'agent.stopped', 'admin.usb_exception_granted', 'admin.usb_exception_requested', 'admin.usb_exception_revoked']) expect(types).toContain(t);
    const bad = events.map((e) => ({ type: e.type, seq: e.seq, errors: eventDataErrors(e.type, e.data) })).filter((x) => x.errors.length);
    expect(bad).toEqual([]);
    const db = new Database(join(c.dataDir, 'console.db'), { readonly: true });
    try {
      expect(db.prepare('SELECT * FROM event_data_invalid').all()).toEqual([]);
    } finally {
      db.close();
    }
    expect(events.filter((e) => e.type === 'agent.event_data_invalid')).toEqual([]);
  });
});
