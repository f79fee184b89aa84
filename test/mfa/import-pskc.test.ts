/**
 * PSKC import (RFC 6030): the RFC's own example packages (test/mfa/fixtures/rfc6030-figure*.pskcxml,
 * Figures 2, 3, 6, 7 as printed, with their documented keys and password), codes from the imported
 * secrets checked against oathtool, and hostile or unsupported documents refused whole.
 */
import { execFileSync } from 'node:child_process';
import { createCipheriv, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hotp } from '../../protocol/mfa/otp.js';
import { parsePskc } from '../../console/mfa/import-pskc.js';
import { parseXml } from '../../console/mfa/import-xml.js';

const fx = (n: string) => readFileSync(join(import.meta.dirname, 'fixtures', n), 'utf8');
const PSK = Buffer.from('12345678901234567890123456789012', 'hex'); // RFC 6030 §6.1 example key
const oathHotp = (hex: string, counter: number, digits: number) =>
  execFileSync('oathtool', ['--hotp', `--digits=${digits}`, `--counter=${counter}`, hex], { encoding: 'utf8' }).trim();

describe('RFC 6030 example packages', () => {
  it('Figure 2: the 4-byte secret "1234" is refused (too short for an OTP seed), naming the KeyPackage', () => {
    const r = parsePskc(fx('rfc6030-figure2.pskcxml'));
    expect(r.rows).toEqual([]);
    expect(r.errors).toEqual([expect.stringMatching(/^KeyPackage 1: .*secret must be 10–64 bytes \(has 4\)/)]);
  });

  it('Figure 3 (plaintext, 8 digits, counter 0): secret 12345678901234567890, codes = oathtool', () => {
    const r = parsePskc(fx('rfc6030-figure3.pskcxml'));
    expect(r.errors).toEqual([]);
    expect(r.rows).toHaveLength(1);
    const t = r.rows[0]!;
    expect({ ...t, secret: t.secret.toString('utf8') }).toEqual({
      user: null, serial: '987654321', secret: '12345678901234567890', type: 'hotp', algorithm: 'SHA1', digits: 8, period: 30, counter: 0,
    });
    for (const c of [0, 1, 9]) expect(hotp(t.secret, c, 8)).toBe(oathHotp(t.secret.toString('hex'), c, 8));
  });

  it('Figure 6 (AES-128-CBC pre-shared key, HMAC-SHA1): decrypts to 12345678901234567890 after the MAC check', () => {
    const r = parsePskc(fx('rfc6030-figure6.pskcxml'), { psk: PSK });
    expect(r.errors).toEqual([]);
    const t = r.rows[0]!;
    expect(t.secret.toString('utf8')).toBe('12345678901234567890');
    expect([t.serial, t.type, t.digits, t.counter]).toEqual(['987654321', 'hotp', 8, 0]);
    expect(hotp(t.secret, 0, 8)).toBe(oathHotp(t.secret.toString('hex'), 0, 8));
  });

  it('Figure 6 without the key, or with a wrong key: refused, nothing imported', () => {
    expect(parsePskc(fx('rfc6030-figure6.pskcxml')).errors[0]).toMatch(/--psk-file is required/);
    const wrong = Buffer.from(PSK);
    wrong[0] ^= 1;
    const r = parsePskc(fx('rfc6030-figure6.pskcxml'), { psk: wrong });
    expect(r.rows).toEqual([]);
    expect(r.errors.join()).toMatch(/MAC mismatch|cannot decrypt/);
  });

  it('Figure 6 with one bit of the ciphertext flipped: MAC mismatch (never decrypted)', () => {
    const tampered = fx('rfc6030-figure6.pskcxml').replace('AAECAwQFBgcICQoLDA0OD+cIHItlB3Wra1DUpxVvOx2lef1VmNPCMl8jwZqIUqGv', 'AAECAwQFBgcICQoLDA0OD+cIHItlB3Wra1DUpxVvOx2lef1VmNPCMl8jwZqIUqGw');
    const r = parsePskc(tampered, { psk: PSK });
    expect(r.rows).toEqual([]);
    expect(r.errors).toEqual([expect.stringMatching(/^KeyPackage 1 \(987654321\): .*MAC mismatch/)]);
  });

  it('Figure 7 (PBKDF2 password "qwerty", 1000 iterations): secret "12345678901234567890"', () => {
    const r = parsePskc(fx('rfc6030-figure7.pskcxml'), { password: 'qwerty' });
    expect(r.errors).toEqual([]);
    const t = r.rows[0]!;
    expect(t.secret.toString('utf8')).toBe('12345678901234567890');
    expect([t.serial, t.type, t.digits]).toEqual(['987654321', 'hotp', 8]);
    for (const c of [0, 5]) expect(hotp(t.secret, c, 8)).toBe(oathHotp(t.secret.toString('hex'), c, 8));
  });

  it('Figure 7 with a wrong password or none: refused', () => {
    expect(parsePskc(fx('rfc6030-figure7.pskcxml'), { password: 'qwertz' }).errors.join()).toMatch(/MAC mismatch|cannot decrypt/);
    expect(parsePskc(fx('rfc6030-figure7.pskcxml')).errors.join()).toMatch(/--password-file is required/);
  });
});

const container = (pkgs: string, head = '') =>
  `<?xml version="1.0"?><KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">${head}${pkgs}</KeyContainer>`;
const pkg = (serial: string, alg: string, secretB64: string, extra = '', params = '<ResponseFormat Length="6" Encoding="DECIMAL"/>') =>
  `<KeyPackage><DeviceInfo><SerialNo>${serial}</SerialNo></DeviceInfo><Key Id="k" Algorithm="${alg}"><AlgorithmParameters>${params}</AlgorithmParameters><Data><Secret><PlainValue>${secretB64}</PlainValue></Secret>${extra}</Data></Key></KeyPackage>`;
const S20 = Buffer.from('12345678901234567890').toString('base64');
const S32 = Buffer.from('12345678901234567890123456789012').toString('base64');

describe('PSKC: TOTP, hashes, and whole-file refusal', () => {
  it('TOTP with TimeInterval 60 and SHA256 from Suite; HOTP with a Counter', () => {
    const r = parsePskc(container(
      pkg('T-1', 'urn:ietf:params:xml:ns:keyprov:pskc:totp', S32, '<TimeInterval><PlainValue>60</PlainValue></TimeInterval>', '<Suite>HMAC-SHA256</Suite><ResponseFormat Length="8" Encoding="DECIMAL"/>') +
        pkg('H-1', 'urn:ietf:params:xml:ns:keyprov:pskc:hotp', S20, '<Counter><PlainValue>42</PlainValue></Counter>'),
    ));
    expect(r.errors).toEqual([]);
    expect(r.rows.map((x) => [x.serial, x.type, x.algorithm, x.digits, x.period, x.counter])).toEqual([
      ['T-1', 'totp', 'SHA256', 8, 60, 0],
      ['H-1', 'hotp', 'SHA1', 6, 30, 42],
    ]);
  });

  it.each([
    ['OCRA', pkg('A', 'urn:ietf:params:xml:ns:keyprov:pskc:ocra', S20), /KeyPackage 2 \(A\): .*unsupported algorithm/],
    ['7 digits', pkg('A', 'urn:ietf:params:xml:ns:keyprov:pskc:hotp', S20, '', '<ResponseFormat Length="7" Encoding="DECIMAL"/>'), /7 digits unsupported/],
    ['HEX response', pkg('A', 'urn:ietf:params:xml:ns:keyprov:pskc:hotp', S20, '', '<ResponseFormat Length="6" Encoding="HEXADECIMAL"/>'), /only DECIMAL/],
    ['SHA384', pkg('A', 'urn:ietf:params:xml:ns:keyprov:pskc:hotp', S20, '', '<Suite>HMAC-SHA384</Suite>'), /unsupported hash/],
    ['bad base64', pkg('A', 'urn:ietf:params:xml:ns:keyprov:pskc:hotp', 'MTIz*'), /not valid base64/],
    ['TOTP T0 ≠ 0', pkg('A', 'urn:ietf:params:xml:ns:keyprov:pskc:totp', S20, '<Time><PlainValue>5</PlainValue></Time>'), /T0/],
    ['counter 2^53', pkg('A', 'urn:ietf:params:xml:ns:keyprov:pskc:hotp', S20, '<Counter><PlainValue>9007199254740992</PlainValue></Counter>'), /invalid Counter/],
    ['duplicate serial', pkg('OK-1', 'urn:ietf:params:xml:ns:keyprov:pskc:hotp', S20), /serial OK-1 repeated/],
    ['serial with a space', pkg('A B', 'urn:ietf:params:xml:ns:keyprov:pskc:hotp', S20), /invalid serial/],
  ])('%s in the second package: the good first one is not imported either', (_n, bad, re) => {
    const r = parsePskc(container(pkg('OK-1', 'urn:ietf:params:xml:ns:keyprov:pskc:hotp', S20) + bad));
    expect(r.errors.length).toBeGreaterThan(0);
    expect(r.errors.join('\n')).toMatch(re);
  });

  it.each([
    ['DOCTYPE with an entity (billion laughs)', '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">&a;</KeyContainer>', /DOCTYPE/],
    ['external entity reference', container('&xxe;'), /entity not allowed/],
    ['processing instruction', container('<?evil x?>'), /processing instructions/],
    ['mismatched tags', container('<KeyPackage></Key>'), /mismatched/],
    ['unclosed', '<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"><KeyPackage>', /unclosed/],
    ['two roots', container('') + '<x/>', /more than one root/],
    ['wrong namespace', '<KeyContainer Version="1.0" xmlns="urn:evil"/>', /not a PSKC KeyContainer/],
    ['version 2', '<KeyContainer Version="2.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"/>', /Version 1.0/],
    ['empty', '', /no root/],
    ['deep nesting', container('<a>'.repeat(100) + '</a>'.repeat(100)), /nested too deeply/],
    ['undeclared prefix', container('<p:KeyPackage/>'), /undeclared namespace prefix/],
    ['repeated attribute', '<KeyContainer Version="1.0" Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"/>', /repeated attribute/],
    ['attribute without value', container('<KeyPackage x/>'), /malformed start tag/],
    ["'<' in an attribute", container('<KeyPackage x="<"/>'), /unterminated start tag|'<' in attribute/],
    ['bare ampersand', container('<KeyPackage>a & b</KeyPackage>'), /bare '&'/],
    ['character reference to NUL', container('<KeyPackage>&#0;</KeyPackage>'), /invalid character reference/],
    ['text before the root', 'junk' + container(''), /text outside the root/],
    ['more than 16 MiB', container(' '.repeat(16 * 1024 * 1024)), /too large/],
    ['key wrap', container(pkg('A', 'urn:ietf:params:xml:ns:keyprov:pskc:hotp', S20), '<EncryptionKey><X509Data xmlns="http://www.w3.org/2000/09/xmldsig#"/></EncryptionKey>'), /unsupported EncryptionKey/],
    ['PBKDF2 with 10^9 iterations', fx('rfc6030-figure7.pskcxml').replace('<IterationCount>1000</IterationCount>', '<IterationCount>1000000000</IterationCount>'), /iteration count/],
  ])('%s: refused, nothing imported', (_n, xml, re) => {
    const r = parsePskc(xml, { password: 'qwerty', psk: PSK });
    expect(r.rows).toEqual([]);
    expect(r.errors.join('\n')).toMatch(re);
  });

  it('XML reader: predefined entities, character references, CDATA and comments', () => {
    const el = parseXml('<?xml version="1.0"?><!-- c --><a x="&lt;&#x41;"><b>&amp;&#66;<![CDATA[<c>]]></b></a>');
    expect(el.attrs.get('x')).toBe('<A');
    expect(el.children[0]!.text).toBe('&B<c>');
  });
});

describe('PSKC: other ciphers, MACs and the xenc11 form of PBKDF2 parameters', () => {
  // Built here with node:crypto the way RFC 6030 §6.1/§6.2 describe (IV ‖ CBC ciphertext, MAC over it).
  const enc = (key: Buffer, plain: Buffer, alg: string) => {
    const iv = randomBytes(16);
    const c = createCipheriv(alg, key, iv);
    return Buffer.concat([iv, c.update(plain), c.final()]);
  };
  const SECRET = Buffer.from('3132333435363738393031323334353637383930313233343536373839303132', 'hex');
  const MACKEY = randomBytes(32);
  function doc(key: Buffer, encryptionKey: string, cipherUri: string, cipher: string, macUri: string, macAlg: string): string {
    const ct = enc(key, SECRET, cipher);
    const mk = enc(key, MACKEY, cipher);
    const mac = createHmac(macAlg, MACKEY).update(ct).digest();
    return `<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" xmlns:xenc11="http://www.w3.org/2009/xmlenc11#">
  <EncryptionKey>${encryptionKey}</EncryptionKey>
  <MACMethod Algorithm="${macUri}"><MACKey><xenc:EncryptionMethod Algorithm="${cipherUri}"/><xenc:CipherData><xenc:CipherValue>${mk.toString('base64')}</xenc:CipherValue></xenc:CipherData></MACKey></MACMethod>
  <KeyPackage><DeviceInfo><SerialNo>V-256</SerialNo></DeviceInfo>
    <Key Id="1" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp">
      <AlgorithmParameters><Suite>HMAC-SHA256</Suite><ResponseFormat Length="8" Encoding="DECIMAL"/></AlgorithmParameters>
      <Data><Secret><EncryptedValue><xenc:EncryptionMethod Algorithm="${cipherUri}"/><xenc:CipherData><xenc:CipherValue>${ct.toString('base64')}</xenc:CipherValue></xenc:CipherData></EncryptedValue><ValueMAC>${mac.toString('base64')}</ValueMAC></Secret>
        <TimeInterval><PlainValue>30</PlainValue></TimeInterval></Data>
    </Key></KeyPackage>
</KeyContainer>`;
  }
  const totp256 = (hex: string, t: number) => execFileSync('oathtool', ['--totp=SHA256', '--digits=8', `--now=@${t}`, hex], { encoding: 'utf8' }).trim();

  it('AES-256-CBC under a pre-shared key, HMAC-SHA256 MAC: secret decrypted, SHA256 8-digit codes = oathtool', () => {
    const key = randomBytes(32);
    const xml = doc(key, '<ds:KeyName>PSK</ds:KeyName>', 'http://www.w3.org/2001/04/xmlenc#aes256-cbc', 'aes-256-cbc', 'http://www.w3.org/2001/04/xmldsig-more#hmac-sha256', 'sha256');
    const r = parsePskc(xml, { psk: key });
    expect(r.errors).toEqual([]);
    const t = r.rows[0]!;
    expect([t.serial, t.type, t.algorithm, t.digits, t.secret.equals(SECRET)]).toEqual(['V-256', 'totp', 'SHA256', 8, true]);
    expect(hotp(t.secret, Math.floor(1_800_000_000 / 30), 8, 'SHA256')).toBe(totp256(t.secret.toString('hex'), 1_800_000_000));
    // A 16-byte key for an AES-256 file is refused before any decryption.
    expect(parsePskc(xml, { psk: key.subarray(0, 16) }).errors.join()).toMatch(/key length does not fit/);
  });

  it('PBKDF2 with xenc11-qualified parameters and PRF HMAC-SHA256, AES-192-CBC, HMAC-SHA384', () => {
    const salt = randomBytes(8);
    const key = pbkdf2Sync('秘密のパスワード', salt, 2000, 24, 'sha256');
    const derived = `<xenc11:DerivedKey><xenc11:KeyDerivationMethod Algorithm="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2"><xenc11:PBKDF2-params><xenc11:Salt><xenc11:Specified>${salt.toString('base64')}</xenc11:Specified></xenc11:Salt><xenc11:IterationCount>2000</xenc11:IterationCount><xenc11:KeyLength>24</xenc11:KeyLength><xenc11:PRF Algorithm="http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"/></xenc11:PBKDF2-params></xenc11:KeyDerivationMethod></xenc11:DerivedKey>`;
    const xml = doc(key, derived, 'http://www.w3.org/2001/04/xmlenc#aes192-cbc', 'aes-192-cbc', 'http://www.w3.org/2001/04/xmldsig-more#hmac-sha384', 'sha384');
    const r = parsePskc(xml, { password: '秘密のパスワード' });
    expect(r.errors).toEqual([]);
    expect(r.rows[0]!.secret.equals(SECRET)).toBe(true);
    expect(parsePskc(xml, { password: '秘密のパスワー' }).rows).toEqual([]);
  });
});
