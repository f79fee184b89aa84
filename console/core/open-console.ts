/**
 * What an opened console data folder offers beyond the modules' ConsoleContext. Its own file, with
 * no imports of the feature registry, so features can name it without an import circle
 * (core/context.ts, which opens the folder, imports every feature through console/modules.ts).
 */
import type { ConsoleContext } from '../module.js';
import type { ConsoleConfig, ConsolePaths } from './paths.js';
import type { KeyAndCert } from './pki.js';

export interface OpenConsole extends ConsoleContext {
  paths: ConsolePaths;
  config: ConsoleConfig;
  ca: KeyAndCert;
  caFingerprint: string;
  server: KeyAndCert;
  policyPublicKeyPem: string;
  /** Whether the feature registry (console/modules.ts) loaded the module of this name. */
  hasModule(name: string): boolean;
  /** Writes the summaries of folded events whose minute has ended (serve's tick), or all of them. */
  flushRepeated(now?: number, force?: boolean): void;
  close(): void;
}

export class PolicyValidationError extends Error {
  constructor(readonly errors: string[]) {
    super(errors.join('; '));
  }
}
