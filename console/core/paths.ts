import { join } from 'node:path';
import { t } from '../../protocol/i18n.js';
import type { RateLimit } from './limits.js';

/** Files of a console data folder. Keys are 0600; the database never holds the secret key. */
export function consolePaths(dataDir: string) {
  return {
    dataDir,
    config: join(dataDir, 'config.json'),
    db: join(dataDir, 'console.db'),
    caCert: join(dataDir, 'ca.pem'),
    caKey: join(dataDir, 'ca-key.pem'),
    serverCert: join(dataDir, 'server.pem'),
    serverKey: join(dataDir, 'server-key.pem'),
    policyKey: join(dataDir, 'policy-signing-key.pem'),
    policyPublicKey: join(dataDir, 'policy-signing-key.pub.pem'),
    secretKey: join(dataDir, 'secret.key'),
    initialAdmin: join(dataDir, 'initial-admin.txt'),
  };
}
export type ConsolePaths = ReturnType<typeof consolePaths>;

/** Per-agent and per-address limits of the agent API; DATA/config.json `limits` overrides each (benches raise them). */
export interface ConsoleLimits {
  /** Events one enrolled agent may upload: a burst for a backlog after days offline, then a steady rate. */
  agentEvents: RateLimit;
  /** Bytes of upload bodies one enrolled agent may send (the disk a terminal may fill). */
  agentBytes: RateLimit;
  /** Enrolment attempts per remote address (a batch enrolment of many terminals comes from many addresses). */
  enrollPerAddress: RateLimit;
  /** Requests per enrolled agent over all agent routes (a terminal sends a few a minute). */
  agentRequests: RateLimit;
  /** Unauthenticated requests per address (web pages with their assets, enrolment, /validate/check). */
  anonymousRequests: RateLimit;
}

export const DEFAULT_LIMITS: ConsoleLimits = {
  // A terminal makes tens to a few thousand events a day; 50,000 at once covers weeks offline.
  agentEvents: { burst: 50_000, perSecond: 25 },
  // 64 MiB at once (that backlog is ~25 MB), then 32 KiB/s: a rogue agent adds ≤ 115 MB/h, not 109 GB/h.
  agentBytes: { burst: 64 * 1024 * 1024, perSecond: 32 * 1024 },
  enrollPerAddress: { burst: 20, perSecond: 1 },
  agentRequests: { burst: 120, perSecond: 20 },
  anonymousRequests: { burst: 300, perSecond: 50 },
};

export interface ConsoleConfig {
  organisation: string;
  sans: string[];
  /** Overrides of DEFAULT_LIMITS, e.g. {"agentEvents": {"burst": 1000000, "perSecond": 100000}}. */
  limits?: Partial<Record<keyof ConsoleLimits, Partial<RateLimit>>>;
}

/** The limits in force: defaults with the config's overrides; a malformed override is an error naming its path. */
export function consoleLimits(config: Pick<ConsoleConfig, 'limits'>): ConsoleLimits {
  const out: ConsoleLimits = { ...DEFAULT_LIMITS };
  const given: unknown = config.limits;
  if (given === undefined) return out;
  if (typeof given !== 'object' || given === null || Array.isArray(given)) throw new Error(`config.json limits: ${t('オブジェクトで指定してください', 'must be an object')}`);
  for (const [name, v] of Object.entries(given)) {
    const known = Object.keys(DEFAULT_LIMITS).join(', ');
    if (!Object.hasOwn(DEFAULT_LIMITS, name)) throw new Error(`config.json limits.${name}: ${t(`不明な制限です(指定できるもの: ${known})`, `unknown limit (known: ${known})`)}`);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`config.json limits.${name}: ${t('{burst, perSecond} の形で指定してください', 'must be an object {burst, perSecond}')}`);
    const key = name as keyof ConsoleLimits;
    const merged: Record<string, unknown> = { ...out[key], ...(v as object) };
    for (const k of Object.keys(merged)) {
      const n = merged[k];
      if (k !== 'burst' && k !== 'perSecond') throw new Error(`config.json limits.${name}.${k}: ${t('不明な設定です', 'unknown setting')}`);
      if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0) throw new Error(`config.json limits.${name}.${k}: ${t('正の数を指定してください', 'must be a positive number')}`);
    }
    out[key] = { burst: merged.burst as number, perSecond: merged.perSecond as number };
  }
  return out;
}
