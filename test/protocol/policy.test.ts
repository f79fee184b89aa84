import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { builtinPolicy, defaultPolicyBody, judgeSignedPolicy, parsePolicyBody, policyBodyErrors, signPolicy, type PolicyDocument } from '../../protocol/policy.js';

const keys = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519');
const pub = keys.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const doc = (version: number): PolicyDocument => ({ version, issuedAt: '2026-11-21T00:00:00.000Z', issuedBy: 'test', ...defaultPolicyBody() });

describe('signed policy judgement', () => {
  it('accepts a correctly signed newer version', () => {
    const v = judgeSignedPolicy(signPolicy(doc(3), keys.privateKey), pub, 2);
    expect(v).toMatchObject({ ok: true, policy: { version: 3 } });
  });
  it.each([
    ['same version (replay)', 3, 3],
    ['older version (rollback)', 2, 3],
  ])('rejects %s', (_n, version, highest) => {
    expect(judgeSignedPolicy(signPolicy(doc(version), keys.privateKey), pub, highest)).toMatchObject({ ok: false, reason: 'rollback' });
  });
  it('rejects a document edited after signing', () => {
    const s = signPolicy(doc(4), keys.privateKey);
    const edited = { ...s, policy: { ...s.policy, usb: { ...s.policy.usb, mode: 'monitor' as const } } };
    expect(judgeSignedPolicy(edited, pub, 0)).toMatchObject({ ok: false, reason: 'bad_signature' });
  });
  it('rejects a raised version number without re-signing', () => {
    const s = signPolicy(doc(4), keys.privateKey);
    expect(judgeSignedPolicy({ ...s, policy: { ...s.policy, version: 99 } }, pub, 0)).toMatchObject({ ok: false, reason: 'bad_signature' });
  });
  it('rejects a signature by another key', () => {
    expect(judgeSignedPolicy(signPolicy(doc(5), other.privateKey), pub, 0)).toMatchObject({ ok: false, reason: 'bad_signature' });
  });
  it.each([
    ['null', null],
    ['no signature', { policy: doc(1) }],
    ['garbage signature', { policy: doc(1), signature: '!!!' }],
  ])('rejects malformed input: %s', (_n, x) => {
    expect(judgeSignedPolicy(x, pub, 0).ok).toBe(false);
  });
  it('rejects a validly signed but invalid document', () => {
    const bad = { ...doc(6), agent: { heartbeatSeconds: 0, uploadBatchSize: 1 } };
    expect(judgeSignedPolicy(signPolicy(bad, keys.privateKey), pub, 0)).toMatchObject({ ok: false, reason: 'invalid' });
  });
  it('the built-in policy is version 0 so any signed policy replaces it', () => {
    expect(builtinPolicy().version).toBe(0);
  });
});

describe('policy files written by administrators', () => {
  it('merges a partial file into the policy in force', () => {
    const r = parsePolicyBody('{"agent":{"heartbeatSeconds":5}}', defaultPolicyBody());
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.body.agent).toEqual({ heartbeatSeconds: 5, uploadBatchSize: 500 });
      expect(r.body.usb).toEqual(defaultPolicyBody().usb);
    }
  });
  it.each([
    ['not JSON', '{', /not valid JSON/],
    ['an array', '[]', /JSON object/],
    ['unknown section', '{"printers": {}}', /policy\.printers: unknown setting/],
    ['unknown setting', '{"agent": {"heartbeat": 5}}', /policy\.agent\.heartbeat: unknown setting/],
    ['out of range', '{"agent": {"heartbeatSeconds": 0}}', /heartbeatSeconds: must be an integer from 1 to 3600/],
    ['wrong type', '{"agent": {"uploadBatchSize": "500"}}', /uploadBatchSize/],
  ])('rejects %s with a message naming the setting', (_n, text, message) => {
    const r = parsePolicyBody(text, defaultPolicyBody());
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.join('\n')).toMatch(message);
  });
  it('the defaults are valid', () => {
    expect(policyBodyErrors(defaultPolicyBody())).toEqual([]);
  });
});
