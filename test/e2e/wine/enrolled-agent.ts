/**
 * One packaged sekimori-agent.exe under wine, enrolled at a test console: the set-up the Windows
 * scenario tiers share (enrol, run, its output, waits that fail at once — with the agent's output —
 * when the agent has ended instead of waiting out their timeout).
 */
import { waitFor, type ConsoleEventJson, type TestConsole } from '../../integration/harness.js';
import { AGENT_EXE, runWine, startWine, winPath, type WineProcess } from './wine.js';

export class EnrolledWineAgent {
  agentId = '';
  proc: WineProcess | undefined;
  ended = false;

  constructor(
    private readonly c: TestConsole,
    readonly prefix: string,
    /** The agent's state folder (a Unix path inside the test's work folder). */
    readonly state: string,
    readonly exe: string = AGENT_EXE,
  ) {}

  /** `enroll` with a fresh token; throws with the agent's stderr when it fails. */
  async enroll(): Promise<string> {
    const tok = this.c.enrollToken();
    const r = await runWine([winPath(this.exe), 'enroll', '--console', this.c.url, '--token', tok.token, '--ca-fingerprint', tok.caFingerprint, '--state', winPath(this.state), '--json'], {
      prefix: this.prefix,
      timeoutMs: 120_000,
    });
    if (r.code !== 0) throw new Error(`enroll exited ${r.code}: ${r.stderr}${r.stdout}`);
    this.agentId = (JSON.parse(r.stdout) as { agentId: string }).agentId;
    return this.agentId;
  }

  /** `run` in the background, with these extra environment variables. */
  start(env: Record<string, string> = {}): void {
    this.ended = false;
    const proc = startWine([winPath(this.exe), 'run', '--state', winPath(this.state)], { prefix: this.prefix, env, timeoutMs: 900_000 });
    this.proc = proc;
    void proc.exited.then(() => {
      if (this.proc === proc) this.ended = true;
    });
  }

  async stop(): Promise<void> {
    await this.proc?.stop('SIGTERM', 15_000);
  }

  /** Everything the agent wrote (stdout then stderr). */
  output(): string {
    return (this.proc?.stdout() ?? '') + (this.proc?.stderr() ?? '');
  }

  /** The end of the output, to append to a failure message. */
  tail(): string {
    return `\n--- agent output ---\n${this.output().slice(-6000)}`;
  }

  /** Throws (with the output) when the agent has ended: call first in a custom wait. */
  alive(): void {
    if (this.ended) throw new Error(`agent.exe ended${this.tail()}`);
  }

  events(type: string): ConsoleEventJson[] {
    return this.c.events(['--agent', this.agentId, '--type', type]);
  }

  /** Waits for a console event of this agent. */
  eventOf(what: string, type: string, pred: (e: ConsoleEventJson) => boolean, ms = 90_000): Promise<ConsoleEventJson> {
    return this.until(what, () => this.events(type).find(pred), ms, 1000);
  }

  /** Waits for a line in the agent's output. */
  inLog(what: string, re: RegExp, ms = 120_000): Promise<RegExpExecArray> {
    return this.until(what, () => re.exec(this.output()) ?? undefined, ms, 500);
  }

  /** waitFor that fails at once when the agent has ended, and names its output when it times out. */
  until<T>(what: string, f: () => T | Promise<T>, ms: number, everyMs = 1000): Promise<NonNullable<T>> {
    return waitFor(
      what,
      () => {
        this.alive();
        return f();
      },
      ms,
      everyMs,
    ).catch((e: Error) => {
      throw new Error(e.message.includes('--- agent output ---') ? e.message : `${e.message}${this.tail()}`);
    });
  }
}
