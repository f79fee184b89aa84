/**
 * Monitor mode with the real agent process on its own fake sysfs tree: it reports what it would
 * block (`usb.would_block`) and, when the agent itself was enrolled with --monitor, writes nothing.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeSysfs } from '../usb/fake-sysfs.js';
import { enrollAgent, startConsole, testAgentEnv, waitFor, type TestAgent, type TestConsole } from './harness.js';

describe('USB monitor mode', () => {
  let c: TestConsole;
  const agents: TestAgent[] = [];
  beforeAll(async () => {
    c = await startConsole({ policy: { agent: { heartbeatSeconds: 1, uploadBatchSize: 500 } } });
  });
  afterAll(async () => {
    for (const a of agents) await a.cleanup();
    await c.cleanup();
  });

  async function agentWithStick(monitor: boolean): Promise<{ a: TestAgent; fake: FakeSysfs }> {
    const a = await enrollAgent(c, { start: false, monitor });
    agents.push(a);
    const fake = new FakeSysfs(testAgentEnv(a.stateDir).SEKIMORI_USB_SYSROOT!);
    fake.addRootHub(1);
    // A stick that was bound before the agent ran (root hub open): storage interface authorized.
    fake.addDevice('1-1', 0x0781, 0x5567, [[0, 8, 6, 0x50]], { configured: true, serial: Buffer.from('MON1') });
    await a.start();
    return { a, fake };
  }
  const read = (fake: FakeSysfs, ...p: string[]) => readFileSync(join(fake.usbDir(), ...p), 'utf8').trim();

  it('an agent enrolled with --monitor reports usb.would_block and changes nothing', async () => {
    const { a, fake } = await agentWithStick(true);
    const e = await waitFor('usb.would_block', () => c.events(['--agent', a.agentId, '--type', 'usb.would_block'])[0], 30_000, 250);
    expect(e.data.rule).toBe('class:08');
    expect(c.events(['--agent', a.agentId, '--type', 'usb.blocked'])).toHaveLength(0);
    expect(read(fake, 'usb1', 'authorized_default')).toBe('1');
    expect(read(fake, '1-1', 'authorized')).toBe('1');
    expect(read(fake, '1-1:1.0', 'authorized')).toBe('1');
  });

  it('an enforcing agent cuts the same stick off', async () => {
    const { a, fake } = await agentWithStick(false);
    await waitFor('usb.blocked', () => c.events(['--agent', a.agentId, '--type', 'usb.blocked']).length > 0, 30_000, 250);
    expect(read(fake, 'usb1', 'authorized_default')).toBe('0');
    // Nothing of it is allowed, so the whole device is de-authorized (the kernel drops its interfaces).
    expect(read(fake, '1-1', 'authorized')).toBe('0');
  });
});
