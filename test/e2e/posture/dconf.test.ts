/**
 * Screen-lock enforcement with the real dconf (issue 16), in a private mount namespace whose
 * /etc/dconf is a tmpfs (the host's own dconf configuration is never touched): a user has raised
 * GNOME's idle delay to 3600 s in their own database; the agent's enforcement writes its keyfile and
 * lock and runs `dconf update`; dconf itself then answers 300 s for that user (the lock wins) and the
 * posture reading is ok and locked down. With the lock file removed (and `dconf update`), dconf
 * answers the user's 3600 s again and the reading fails.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostureControlReport } from '../../../protocol/posture.js';
import { ROOT, tempDir } from '../../integration/harness.js';
import { isRoot, requireTools } from '../tools.js';

const SCHEMA = '/usr/share/glib-2.0/schemas/org.gnome.desktop.session.gschema.xml';
const check = requireTools('dconf (real dconf update)', ['dconf', 'unshare'], 'apt-get install dconf-cli util-linux gsettings-desktop-schemas', {
  missing: [...(isRoot() ? [] : ['root (a private mount namespace over /etc/dconf)']), ...(existsSync(SCHEMA) ? [] : [`${SCHEMA} (gsettings-desktop-schemas)`])],
});

describe.skipIf(!check.ok)('posture: GNOME screen lock enforced through the real dconf', () => {
  let w = '';
  let out = '';
  const read = (name: string) => JSON.parse(readFileSync(join(w, name), 'utf8')) as PostureControlReport;
  const line = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(out)?.[1]?.trim();

  beforeAll(async () => {
    w = tempDir('posture-dconf');
    await build({ entryPoints: [join(ROOT, 'test/e2e/posture/dconf-probe.ts')], bundle: true, platform: 'node', format: 'esm', target: 'node22', outfile: join(w, 'probe.mjs'), logLevel: 'error' });
    const script = `set -e
mount -t tmpfs tmpfs /etc/dconf
mkdir -p /etc/dconf/profile /etc/dconf/db/local.d
printf 'user-db:user\\nsystem-db:local\\n' > /etc/dconf/profile/user
mkdir -p "$W/cfg/dconf" "$W/userkf"
printf '[org/gnome/desktop/session]\\nidle-delay=uint32 3600\\n' > "$W/userkf/00-own"
dconf compile "$W/cfg/dconf/user" "$W/userkf"
export XDG_CONFIG_HOME="$W/cfg"
echo before=$(dconf read /org/gnome/desktop/session/idle-delay)
dconf dump /org/gnome/desktop/ > "$W/dump"
"$NODE" "$W/probe.mjs" enforce "$W/dump" > "$W/enforced.json"
echo after=$(dconf read /org/gnome/desktop/session/idle-delay)
echo lockenabled=$(dconf read /org/gnome/desktop/screensaver/lock-enabled)
echo compiled=$(ls /etc/dconf/db | tr '\\n' ' ')
rm /etc/dconf/db/local.d/locks/00-sekimori-screenlock
dconf update
echo unlocked=$(dconf read /org/gnome/desktop/session/idle-delay)
"$NODE" "$W/probe.mjs" read "$W/dump" > "$W/unlocked.json"
`;
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], { env: { ...process.env, W: w, NODE: process.execPath }, encoding: 'utf8', timeout: 60_000 });
    out = r.stdout + r.stderr;
    expect(r.status, out).toBe(0);
  }, 120_000);

  afterAll(() => {
    if (w) rmSync(w, { recursive: true, force: true });
  });

  it("the user's own setting stands before enforcement", () => {
    expect(line('before')).toBe('uint32 3600');
  });

  it('after the agent writes keyfile + lock and runs dconf update, dconf answers the policy for that user', () => {
    expect(line('compiled')).toMatch(/\blocal\b/);
    expect(line('after')).toBe('uint32 300');
    expect(line('lockenabled')).toBe('true');
    expect(read('enforced.json')).toMatchObject({ state: 'ok', detail: { idleDelaySeconds: 300, lockEnabled: true, lockedDown: true } });
    expect(read('enforced.json').evidence.join('\n')).toContain('/etc/dconf/db/local.d/00-sekimori-screenlock:3 /org/gnome/desktop/session/idle-delay=uint32 300 (locked /etc/dconf/db/local.d/locks/00-sekimori-screenlock:1)');
  });

  it("without the lock, dconf answers the user's 3600 s again and the reading fails", () => {
    expect(line('unlocked')).toBe('uint32 3600');
    expect(read('unlocked.json')).toMatchObject({ state: 'fail', detail: { idleDelaySeconds: 3600, lockedDown: false } });
  });
});
