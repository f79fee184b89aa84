import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson } from './canonical.js';
import { defaultMfaPolicy, mfaPolicyErrors, type MfaPolicy } from './policy-mfa.js';
import { defaultSoftwarePolicy, softwarePolicyErrors, type SoftwarePolicy } from './policy-software.js';
import { screenLockPolicyErrors, type ScreenLockPolicy } from './policy-screen-lock.js';
import { defaultUsbPolicy, usbPolicyErrors, type UsbPolicy } from './policy-usb.js';
import { noticeSettingsErrors, type NoticeSettings } from './notice.js';
import { intErrors, isObject, unknownKeys } from './validate.js';

export interface AgentSettings {
  /** Heartbeat period; the console calls a terminal silent after 3 missed beats. */
  heartbeatSeconds: number;
  /** Events per upload request. */
  uploadBatchSize: number;
  /** Screen-lock maximum (issue 16 posture); absent = defaults (5 minutes, not enforced). */
  screenLock?: Partial<ScreenLockPolicy>;
  /** Desktop notices at the terminal (protocol/notice.ts); absent = shown, not in monitor mode. */
  notices?: Partial<NoticeSettings>;
}

/** What an administrator writes: everything but the version and signature data. */
export interface PolicyBody {
  agent: AgentSettings;
  usb: UsbPolicy;
  mfa: MfaPolicy;
  software: SoftwarePolicy;
}

export interface PolicyDocument extends PolicyBody {
  version: number;
  issuedAt: string;
  issuedBy: string;
}

/** The document as it travels: the signature covers canonicalJson(policy). */
export interface SignedPolicy {
  policy: PolicyDocument;
  signature: string; // base64 Ed25519
}

export function defaultPolicyBody(): PolicyBody {
  return {
    agent: { heartbeatSeconds: 30, uploadBatchSize: 500 },
    usb: defaultUsbPolicy(),
    mfa: defaultMfaPolicy(),
    software: defaultSoftwarePolicy(),
  };
}

/**
 * The policy an agent enforces before it has ever received a signed one, or when the stored one
 * fails verification: the strict defaults (fail closed), version 0 so any signed policy replaces it.
 */
export function builtinPolicy(): PolicyDocument {
  return { version: 0, issuedAt: new Date(0).toISOString(), issuedBy: 'builtin', ...defaultPolicyBody() };
}

const BODY_KEYS = ['agent', 'usb', 'mfa', 'software'] as const;

export function policyBodyErrors(x: unknown): string[] {
  if (!isObject(x)) return ['policy: must be a JSON object'];
  const errors = unknownKeys(x, [...BODY_KEYS, 'version', 'issuedAt', 'issuedBy'], 'policy');
  for (const k of BODY_KEYS) if (!(k in x)) errors.push(`policy.${k}: missing`);
  if ('agent' in x) {
    const a = x.agent;
    if (!isObject(a)) errors.push('policy.agent: must be an object');
    else {
      errors.push(...unknownKeys(a, ['heartbeatSeconds', 'uploadBatchSize', 'screenLock', 'notices'], 'policy.agent'));
      errors.push(...noticeSettingsErrors(a.notices, 'policy.agent.notices'));
      if (a.screenLock !== undefined) errors.push(...screenLockPolicyErrors(a.screenLock, 'policy.agent.screenLock'));
      errors.push(...intErrors(a.heartbeatSeconds, 'policy.agent.heartbeatSeconds', 1, 3600));
      errors.push(...intErrors(a.uploadBatchSize, 'policy.agent.uploadBatchSize', 1, 5000));
    }
  }
  if ('usb' in x) errors.push(...usbPolicyErrors(x.usb, 'policy.usb'));
  if ('mfa' in x) errors.push(...mfaPolicyErrors(x.mfa, 'policy.mfa'));
  if ('software' in x) errors.push(...softwarePolicyErrors(x.software, 'policy.software'));
  return errors;
}

/**
 * Reads an administrator's policy file: a full body, or a partial one whose missing sections and
 * settings are taken from `base` (the policy in force), so `policy set` can change one setting.
 */
export function parsePolicyBody(text: string, base: PolicyBody): { ok: true; body: PolicyBody } | { ok: false; errors: string[] } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return { ok: false, errors: [`policy: not valid JSON (${(e as Error).message})`] };
  }
  if (!isObject(parsed)) return { ok: false, errors: ['policy: must be a JSON object'] };
  const merged: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(parsed)) {
    if (k === 'version' || k === 'issuedAt' || k === 'issuedBy') continue;
    // A section given in part keeps the other settings of that section as they are in force.
    const current = merged[k];
    merged[k] = isObject(current) && isObject(v) ? { ...current, ...v } : v;
  }
  const errors = policyBodyErrors(merged);
  if (errors.length) return { ok: false, errors };
  const body = Object.fromEntries(BODY_KEYS.map((k) => [k, merged[k]])) as unknown as PolicyBody;
  return { ok: true, body };
}

export function signPolicy(policy: PolicyDocument, privateKeyPem: string | KeyObject): SignedPolicy {
  const key = typeof privateKeyPem === 'string' ? createPrivateKey(privateKeyPem) : privateKeyPem;
  const signature = sign(null, Buffer.from(canonicalJson(policy)), key).toString('base64');
  return { policy, signature };
}

export type PolicyVerdict =
  | { ok: true; policy: PolicyDocument }
  | { ok: false; reason: 'malformed' | 'bad_signature' | 'invalid' | 'rollback'; detail: string };

/**
 * Decides whether a signed policy received from anywhere may replace the one in force:
 * the signature must verify with the console key pinned at enrollment, the content must be
 * valid, and the version must be strictly higher than the highest version ever accepted.
 */
export function judgeSignedPolicy(x: unknown, publicKeyPem: string | KeyObject, highestAccepted: number): PolicyVerdict {
  if (!isObject(x) || !isObject(x.policy) || typeof x.signature !== 'string') {
    return { ok: false, reason: 'malformed', detail: 'expected {policy, signature}' };
  }
  const key = typeof publicKeyPem === 'string' ? createPublicKey(publicKeyPem) : publicKeyPem;
  let good = false;
  try {
    good = verify(null, Buffer.from(canonicalJson(x.policy)), key, Buffer.from(x.signature, 'base64'));
  } catch {
    good = false;
  }
  if (!good) return { ok: false, reason: 'bad_signature', detail: 'signature does not verify with the pinned console key' };
  const p = x.policy;
  const errors = policyBodyErrors(p);
  if (typeof p.version !== 'number' || !Number.isSafeInteger(p.version) || p.version < 1) errors.push('policy.version: must be a positive integer');
  if (errors.length) return { ok: false, reason: 'invalid', detail: errors.join('; ') };
  if ((p.version as number) <= highestAccepted) {
    return { ok: false, reason: 'rollback', detail: `version ${p.version} is not newer than ${highestAccepted}` };
  }
  return { ok: true, policy: p as unknown as PolicyDocument };
}
