/**
 * The agent's policy in force: the last signed policy that verified with the pinned console key,
 * kept on disk so it is enforced across restarts and while the console is away. Anything that
 * fails verification is rejected and reported; the last good policy stays.
 */
import { existsSync, readFileSync } from 'node:fs';
import { builtinPolicy, judgeSignedPolicy, type PolicyDocument, type PolicyVerdict, type SignedPolicy } from '../../protocol/policy.js';
import { writeFileDurably } from '../state.js';

export interface StoredPolicyFile {
  signed: SignedPolicy | null;
  /** Highest version ever accepted: a rollback below it is refused even after a restart. */
  highestVersion: number;
}

export class PolicyStore {
  private current: PolicyDocument = builtinPolicy();
  private highest = 0;

  constructor(
    private readonly path: string,
    private readonly publicKeyPem: string,
  ) {}

  /** Loads the stored policy. Returns a rejection verdict when the file was tampered with. */
  load(): PolicyVerdict | null {
    if (!existsSync(this.path)) return null;
    let file: StoredPolicyFile;
    try {
      file = JSON.parse(readFileSync(this.path, 'utf8')) as StoredPolicyFile;
    } catch (e) {
      return { ok: false, reason: 'malformed', detail: `stored policy unreadable: ${(e as Error).message}` };
    }
    this.highest = Number.isSafeInteger(file.highestVersion) ? file.highestVersion : 0;
    if (!file.signed) return null;
    // Re-verify what is on disk: the file is only trusted through the signature.
    const verdict = judgeSignedPolicy(file.signed, this.publicKeyPem, 0);
    if (verdict.ok) {
      if (verdict.policy.version < this.highest) {
        return { ok: false, reason: 'rollback', detail: `stored policy v${verdict.policy.version} is older than v${this.highest} already accepted` };
      }
      this.current = verdict.policy;
      this.highest = Math.max(this.highest, verdict.policy.version);
    }
    return verdict;
  }

  policy(): PolicyDocument {
    return this.current;
  }

  /** Judges a signed policy from the console; stores it durably before it takes effect. */
  offer(signed: unknown): PolicyVerdict {
    const verdict = judgeSignedPolicy(signed, this.publicKeyPem, this.highest);
    if (verdict.ok) {
      const file: StoredPolicyFile = { signed: signed as SignedPolicy, highestVersion: verdict.policy.version };
      writeFileDurably(this.path, JSON.stringify(file));
      this.current = verdict.policy;
      this.highest = verdict.policy.version;
    }
    return verdict;
  }
}
