/**
 * Retention with verifiable archives (issue 17) as a console module: its tables, the `retention`
 * and `archive` commands, the daily run inside `serve` (tick), and the アーカイブ page
 * (console/web/pages/archives.ts).
 */
import type { ConsoleContext, ConsoleModule } from '../module.js';
import { archiveRoutes } from '../web/pages/archives.js';
import { toRoute } from '../web/web.js';
import { archiveCommand, retentionCommand } from './cli.js';
import { runRetention } from './run.js';
import { retentionMigrations } from './schema.js';
import { lastRun } from './store.js';

const DAY = 86_400_000;
/**
 * Events per archive inside serve: one tick's work is synchronous, so it is bounded to keep agents'
 * requests waiting well under a second (bench/archive: ~0.1 ms of CPU per event archived).
 */
export const SERVE_MAX_EVENTS = 5_000;
/** While a backlog is due, the next bounded step follows after this pause. */
const BACKLOG_PAUSE_MS = 10_000;
/** First look after start (startup stays quick). */
const FIRST_LOOK_MS = 60_000;

const next = new WeakMap<ConsoleContext, number>();

export function retentionTick(ctx: ConsoleContext, now: Date): void {
  const t = now.getTime();
  const at = next.get(ctx);
  if (at === undefined) {
    next.set(ctx, t + FIRST_LOOK_MS);
    return;
  }
  if (t < at) return;
  const last = lastRun(ctx.db);
  const lastMs = last ? Date.parse(last) : 0;
  if (Number.isFinite(lastMs) && t - lastMs < DAY && lastMs <= t) {
    next.set(ctx, lastMs + DAY);
    return;
  }
  let more = false;
  try {
    more = runRetention(ctx, now, { actor: 'retention', maxEvents: SERVE_MAX_EVENTS, maxArchives: 1 }).more;
  } catch (e) {
    // A broken config.json retention section: said once per day, nothing deleted.
    ctx.recordEvent({ type: 'admin.archive_failed', severity: 'critical', user: 'retention', data: { archive: '', events: 0, reason: (e as Error).message.slice(0, 500) } });
  }
  // A backlog continues in bounded steps; a run that finished waits a day (lastRun was stamped).
  next.set(ctx, more ? t + BACKLOG_PAUSE_MS : t + DAY);
  if (more) (ctx.db.prepare("DELETE FROM retention_state WHERE key = 'last_run'").run());
}

export const retentionModule: ConsoleModule = {
  name: 'retention',
  migrations: [...retentionMigrations],
  routes: (ctx) => archiveRoutes.map((s) => toRoute(ctx, s)),
  commands: { retention: retentionCommand, archive: archiveCommand },
  tick: retentionTick,
};
