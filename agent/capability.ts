/**
 * The contract between the agent's service loop (agent/run.ts) and each capability folder
 * (usb/, mfa/, software/). A capability observes, decides with pure functions, enforces, and
 * reports through ctx.emit — which has written the event to disk before it returns.
 */
import type { EventDataOf } from '../protocol/event-data.js';
import type { AgentEventType, SekimoriEvent, Severity } from '../protocol/events.js';
import type { Notice } from '../protocol/notice.js';
import type { PolicyDocument } from '../protocol/policy.js';

/** An event as the outbox stores it (data already checked against its type by the producer's types). */
export interface NewEvent {
  type: AgentEventType;
  severity?: Severity; // defaults to the catalogue's severity for the type
  user?: string | null;
  data: Record<string, unknown>;
}

/** An event as a capability emits it: `data` has the shape declared for its type (protocol/event-data.ts). */
export interface TypedEvent<T extends AgentEventType> {
  type: T;
  severity?: Severity;
  user?: string | null;
  data: EventDataOf<T>;
}

export interface ConsoleReply {
  status: number;
  body: unknown;
  /** Response headers where the link has them (Retry-After on 429/503). */
  headers?: Record<string, string | string[] | undefined>;
}

/** The agent's mutual-TLS link to the console. */
export interface ConsoleLink {
  /** Throws ConsoleUnreachableError when the console cannot be reached (network, TLS, timeout). */
  request(method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs?: number): Promise<ConsoleReply>;
  /** The console's clock as last seen in a heartbeat (local clock + measured offset). */
  consoleNow(): Date;
  /** Whether the last request to the console succeeded. */
  reachable(): boolean;
}

export class ConsoleUnreachableError extends Error {}

/**
 * Who sent a local request. On the root-only socket: nulls (only root can connect there). On the
 * unlock socket: the kernel's SO_PEERCRED of the calling process and the account name getpwuid
 * gives for that uid (null when it has none).
 */
export interface LocalPeer {
  pid: number | null;
  uid: number | null;
  user?: string | null;
  /** Windows: the caller's SID from its token (where Linux has the uid). */
  sid?: string | null;
}

export interface LocalRequest {
  body: unknown; // parsed JSON (null when there was no body)
  peer: LocalPeer;
}
export type LocalHandler = (req: LocalRequest) => Promise<ConsoleReply> | ConsoleReply;

/** HTTP over the agent's root-only Unix socket (STATE/agent.sock). */
export interface LocalApi {
  route(method: 'GET' | 'POST', path: string, handler: LocalHandler): void;
  readonly socketPath: string;
  /**
   * A route on the unlock socket, which every local user can reach (screen lockers run as the
   * user): the handler always gets the caller's kernel credentials in req.peer and must act for
   * that account only. Optional so that test doubles without it still fit.
   */
  userRoute?(method: 'GET' | 'POST', path: string, handler: LocalHandler): void;
  readonly unlockSocketPath?: string;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface AgentContext {
  agentId: string;
  stateDir: string;
  /** Set at enrollment (`--monitor`): the agent reports what it would do and changes nothing. */
  monitorOnly: boolean;
  emit<T extends AgentEventType>(e: TypedEvent<T>): SekimoriEvent;
  log(level: LogLevel, message: string): void;
  console: ConsoleLink;
  local: LocalApi;
  /**
   * Tells the logged-in user (desktop notice, protocol/notice.ts). Fire-and-forget: never blocks or
   * throws; call it after the event is emitted. The notifier dedupes by notice.key and stays silent
   * in monitor mode unless the policy asks. Optional so that test doubles without it still fit.
   */
  notify?(n: Notice): void;
}

export interface Capability {
  readonly name: string;
  /** Called once, with the policy in force (the last good signed one, or the strict built-in). */
  start(ctx: AgentContext, policy: PolicyDocument): Promise<void>;
  /** Called with each newly accepted policy. */
  applyPolicy(policy: PolicyDocument): Promise<void>;
  /** Stops watchers. Must leave the machine fail-closed (e.g. USB stays default-deny). */
  stop(): Promise<void>;
}
