/**
 * The contract between the console core (server, store, CLI) and each feature module
 * (agent backbone, mfa/, web/). A module brings its own schema migrations, HTTP routes and
 * CLI commands; console/modules.ts lists the modules.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type Database from 'better-sqlite3';
import type { ConsoleEventType, SekimoriEvent, Severity } from '../protocol/events.js';
import type { SignedPolicy } from '../protocol/policy.js';

export interface ApiRequest {
  method: string;
  path: string; // without the query string
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: Buffer; // already size-limited
  remoteAddress: string;
  /** Set when the route has auth 'agent': the verified, non-revoked agent behind the client certificate. */
  agentId: string | null;
  /** Parsed JSON body; throws HttpError(400) on malformed JSON. */
  json(): unknown;
  /** Regex groups when the route path is a RegExp. */
  params: string[];
}

export interface ApiResponse {
  status: number;
  json?: unknown;
  body?: string | Buffer;
  headers?: Record<string, string | string[]>;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: string[],
    /** Extra response headers, e.g. Retry-After on 429/503. */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string | RegExp;
  /** 'agent' = mutual TLS with a valid, non-revoked agent certificate; 'none' = the module authenticates. */
  auth: 'agent' | 'none';
  /** Largest accepted body in bytes (default 64 KiB). */
  maxBody?: number;
  handle(req: ApiRequest): ApiResponse | Promise<ApiResponse>;
}

export interface ConsoleEventInput {
  type: ConsoleEventType;
  severity?: Severity;
  user?: string | null; // the console account that acted (admin.*) or the staff user concerned
  /** The terminal concerned, if any: stored so that filtering by terminal finds console events too. */
  terminalId?: string | null;
  data: Record<string, unknown>;
}

export interface ConsoleContext {
  dataDir: string;
  db: Database.Database;
  /** Appends to the console's own hash chain (agentId 'console') and returns the stored event. */
  recordEvent(e: ConsoleEventInput): SekimoriEvent;
  /**
   * For events anyone can cause (unauthenticated requests, refusals, floods): the first event per
   * `key` in each minute is recorded at once, later ones are counted and written as ONE summary
   * event of the same type (data.repeated = N, data.firstSeen, data.lastSeen) when the minute
   * ends, so a flood cannot bury real admin.* events. Key it by cause and source, e.g.
   * `login_failed:${remoteAddress}`. See console/core/folding.ts.
   */
  recordRepeated(e: ConsoleEventInput, key: string): void;
  /** The signed policy in force. */
  currentPolicy(): SignedPolicy;
  /** Signs and stores a new policy version (validated; version = current + 1). */
  publishPolicy(body: unknown, actor: string): SignedPolicy;
  /** AES-256-GCM with the key in DATA/secret.key (outside the database file). */
  seal(plaintext: Buffer | string): string;
  open(sealed: string): Buffer;
  /** Municipality name from DATA/config.json (issuer of TOTP enrolments, report titles). */
  organisation(): string;
  /** Closes the database (CLI commands open a context per run). */
  close(): void;
}

/** Runs a CLI command body with a freshly opened console and always closes it. */
export function withConsole<T>(open: () => ConsoleContext, f: (ctx: ConsoleContext) => T): T {
  const ctx = open();
  try {
    return f(ctx);
  } finally {
    ctx.close();
  }
}

/** "90s", "30m", "2h", "7d" → milliseconds, or null when the text is not such a duration. */
export function parseDuration(s: string): number | null {
  const m = /^(\d{1,6})\s*([smhd])$/.exec(s.trim());
  if (!m) return null;
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

export interface CliCommand {
  /** One line for `sekimori-console help`. */
  summary: string;
  run(args: string[], open: () => ConsoleContext): Promise<number> | number;
}

export interface ConsoleModule {
  name: string;
  /** Applied in order, once each, tracked per module name. */
  migrations: string[];
  routes?(ctx: ConsoleContext): Route[];
  commands?: Record<string, CliCommand>;
  /** Periodic work while serving (e.g. silence detection); called about once a second. */
  tick?(ctx: ConsoleContext, now: Date): void;
}
