/**
 * Browser tier, 端末の対策状況 (issue 16): real Chromium against a real console. Terminal A reports a
 * compliant posture over mutual TLS with its own client certificate; terminal B is a real running
 * agent whose posture capability reads the non-compliant fixture tree (test/fixtures/posture/bad:
 * no modprobe.d hold, PAM stack without the module, screen lock 15 min and off); terminal C reports
 * evidence strings that are markup. The matrix shows A compliant and B/C not, cell by cell; the
 * evidence is text (no script ran, no request left); `posture --json` agrees.
 */

import { join } from 'node:path';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostureControlReport, PostureDocument } from '../../../protocol/posture.js';
import { enrollAgent, rawRequest, ROOT, startConsole, tempDir, waitFor, type TestAgent, type TestConsole } from '../../integration/harness.js';
import { adminBrowser, requireBrowser, SHOTS } from './browser.js';

const tools = requireBrowser(['dist/console/web/pages/posture.js', 'dist/agent/posture/capability.js']);
const HOSTILE = '<img src=x onerror=alert(1)><script>alert(2)</script>';

type Matrix = { terminals: { agentId: string; compliant: boolean | null; verdicts: { control: string; ok: boolean; why: string }[] }[] };

describe.skipIf(!tools.ok)('browser: 端末の対策状況 in Chromium', () => {
  let c: TestConsole;
  let a: TestAgent;
  let b: TestAgent;
  let h: TestAgent;
  let browser: Browser;
  let page: Page;
  let dialogs: string[] = [];
  const requests: string[] = [];
  const savedRoot = process.env.SEKIMORI_POSTURE_ROOT;

  const ok = (control: PostureControlReport['control'], detail: PostureControlReport['detail'] = {}, evidence = ['read']): PostureControlReport => ({ control, state: 'ok', evidence, detail });
  const compliant = (policyVersion: number): PostureDocument => ({
    platform: 'linux',
    collectedAt: new Date().toISOString(),
    agentVersion: '0.1.0',
    policyVersion,
    clockOffsetMs: 0,
    outboxDepth: 0,
    controls: [
      ok('usb_enforced', { mode: 'enforce', rootHubs: 2, rootHubsHolding: 2 }, ['/sys/bus/usb/devices/usb1/authorized_default=0']),
      ok('usb_boot_hold', { configured: true, inEffect: '2' }),
      ok('usb_readonly_rule', { present: true }),
      ok('mfa_pam_services', { services: [{ name: 'login', present: true, included: true }] }),
      ok('mfa_enrolment', {}),
      ok('screen_lock', { idleDelaySeconds: 300, lockEnabled: true, lockedDown: true }),
      ok('software_enforcement', { mode: 'enforce', preexecRunning: true }),
      ok('agent_health', {}),
    ],
  });
  const postDoc = async (agent: TestAgent, doc: PostureDocument) => {
    const r = await rawRequest(c, 'POST', '/api/agent/posture', { agentState: agent.stateDir, body: JSON.stringify(doc) });
    expect(r.status, r.body).toBe(200);
  };

  beforeAll(async () => {
    // The policy must say enforce (the compliant terminal is judged against it), but terminal B is a
    // real agent on THIS machine: its software capability watches only an empty folder of its own,
    // without the pre-exec helper — with the default locations it killed other tests' processes
    // running from /tmp (vitest workers of a checkout there: SIGKILL at start).
    const scope = tempDir('posture-software-scope');
    c = await startConsole({ policy: { software: { mode: 'enforce', locations: [scope], preExec: { enabled: false, fallback: 'deny', timeoutMs: 1000, marks: [] } } } });
    a = await enrollAgent(c, { start: false });
    h = await enrollAgent(c, { start: false });
    const version = ((await rawRequest(c, 'GET', '/api/agent/policy', { agentState: a.stateDir })).json() as { policy: { version: number } }).policy.version;
    await postDoc(a, compliant(version));
    const hostile = compliant(version);
    hostile.controls[2] = { control: 'usb_readonly_rule', state: 'fail', evidence: [HOSTILE, `/etc/udev/rules.d/${HOSTILE}.rules:1`], detail: { present: false } };
    await postDoc(h, hostile);
    // B: a real agent; its posture capability reads the fixture tree (the harness passes the environment on).
    process.env.SEKIMORI_POSTURE_ROOT = join(ROOT, 'test/fixtures/posture/bad');
    b = await enrollAgent(c);
    await waitFor('terminal B posture at the console', () => c.json<Matrix>(['posture']).terminals.find((t) => t.agentId === b.agentId && t.compliant !== null), 90_000, 500);

    ({ browser, page, dialogs } = await adminBrowser(c, {}, (p) => p.on('request', (r) => requests.push(r.url()))));
  }, 240_000);

  afterAll(async () => {
    if (savedRoot === undefined) delete process.env.SEKIMORI_POSTURE_ROOT;
    else process.env.SEKIMORI_POSTURE_ROOT = savedRoot;
    await browser?.close();
    await b?.cleanup();
    await c?.cleanup();
  });

  const cellOk = (agentId: string, control: string) => page.getAttribute(`#posture-matrix tr[data-agent="${agentId}"] td[data-control="${control}"]`, 'data-ok');

  it('the matrix: A compliant in every cell, B (real agent, fixture tree) not, cell by cell', async () => {
    await page.goto(`${c.url}/posture`);
    await page.screenshot({ path: join(SHOTS, 'posture-matrix.png'), fullPage: true });
    expect(await page.textContent(`#posture-matrix tr[data-agent="${a.agentId}"]`)).toContain('適合');
    for (const control of ['usb_enforced', 'usb_boot_hold', 'usb_readonly_rule', 'mfa_pam_services', 'screen_lock', 'software_enforcement', 'agent_health']) expect(await cellOk(a.agentId, control)).toBe('1');
    expect(await page.textContent(`#posture-matrix tr[data-agent="${b.agentId}"]`)).toContain('不適合');
    expect(await cellOk(b.agentId, 'usb_boot_hold')).toBe('0');
    expect(await cellOk(b.agentId, 'usb_readonly_rule')).toBe('0');
    expect(await cellOk(b.agentId, 'mfa_pam_services')).toBe('0');
    expect(await cellOk(b.agentId, 'screen_lock')).toBe('0');
    expect(await page.textContent('#posture-coverage')).toMatch(/1 \/ 3/);
    // Hover text carries the reason and the evidence the agent read.
    expect(await page.getAttribute(`#posture-matrix tr[data-agent="${b.agentId}"] td[data-control="usb_boot_hold"]`, 'title')).toContain('no modprobe.d option or kernel cmdline');
  });

  it("B's detail lists the evidence from its files (file:line)", async () => {
    await page.click(`#posture-matrix tr[data-agent="${b.agentId}"] td a >> nth=0`);
    await page.waitForSelector('#posture-detail');
    const text = (await page.textContent('#posture-detail'))!;
    expect(text).toContain('gdm-password: NOT included');
    expect(text).toContain('/etc/dconf/db/local.d/00-sekimori-screenlock:2 /org/gnome/desktop/session/idle-delay=uint32 900');
    expect(text).toContain('/sys/module/usbcore/parameters/authorized_default=');
  });

  it('terminal-supplied evidence is text: no script ran, no request to it', async () => {
    await page.goto(`${c.url}/posture?agent=${h.agentId}`);
    await page.waitForSelector('#posture-detail');
    const items = await page.$$eval('#posture-detail tr#usb_readonly_rule li', (els) => els.map((e) => e.textContent));
    expect(items).toContain(HOSTILE);
    expect(await page.$$('#posture-detail img, #posture-matrix img')).toHaveLength(0);
    expect(dialogs).toEqual([]);
    expect(requests.filter((u) => !u.startsWith(c.url))).toEqual([]);
  });

  it('posture --json agrees with the page', () => {
    const m = c.json<Matrix>(['posture']);
    expect(m.terminals.find((t) => t.agentId === a.agentId)!.compliant).toBe(true);
    expect(m.terminals.find((t) => t.agentId === b.agentId)!.compliant).toBe(false);
    expect(m.terminals.find((t) => t.agentId === h.agentId)!.verdicts.find((v) => v.control === 'usb_readonly_rule')!.ok).toBe(false);
  });
});
