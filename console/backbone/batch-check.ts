/**
 * The CPU part of taking an upload, apart from the store: the body's text → checked events
 * (envelope and shape checks, each event's hash recomputed, its data declaration checked, its data
 * written as canonical JSON once). Pure — no database, no clock — so it runs in the batch-check
 * worker thread (batch-check-worker.ts) while the console's own thread serves TLS and writes
 * SQLite; ingest.ts only stores what comes out of here.
 */
import { canonicalJson } from '../../protocol/canonical.js';
import { eventHashWithData, eventShapeErrors, isAgentEventType, type SekimoriEvent } from '../../protocol/events.js';
import { MAX_BATCH_EVENTS, uploadEnvelopeCheck } from '../../protocol/api.js';
import { eventDataErrors, eventDataValid } from '../../protocol/event-data.js';
import { HttpError } from '../module.js';

export { MAX_BATCH_EVENTS };

/**
 * One event of a checked batch: everything the agent sent except `data`, which travels as the
 * canonical JSON the hash covered (what is stored), with the verdicts ingest needs.
 */
export interface CheckedEvent extends Omit<SekimoriEvent, 'data'> {
  dataJson: string;
  /** The hash recomputed from the content matches the one sent (false: stored as 'tampered'). */
  hashOk: boolean;
  /** null: the data matches its type's declaration; else why not ([] when not explained, see below). */
  dataErrors: string[] | null;
}

/** Events whose data does not match their declaration are explained up to this many per batch, then counted. */
export const EXPLAINED_PER_BATCH = 8;

/**
 * The upload body (protocol/api.ts UploadRequest), checked whole before anything is stored:
 * 400 `invalid_events` naming every failing path, 413 over MAX_BATCH_EVENTS. Event data that does
 * not match its type's declaration is no reason to refuse (ingest.ts dataFindings).
 */
export function parseBatch(body: unknown, agentId: string): SekimoriEvent[] {
  if (!uploadEnvelopeCheck.check(body)) {
    const details = uploadEnvelopeCheck.errors(body, 'body');
    throw new HttpError(400, 'invalid_batch', details[0] ?? 'body must be a JSON object {batchId, events}', details);
  }
  const events = body.events;
  if (events.length > MAX_BATCH_EVENTS) throw new HttpError(413, 'batch_too_large', `at most ${MAX_BATCH_EVENTS} events per batch`);
  const errors: string[] = [];
  for (let i = 0; i < events.length && errors.length < 100; i++) {
    const e = events[i];
    const where = `events[${i}]`;
    const shape = eventShapeErrors(e, where);
    if (shape.length) errors.push(...shape);
    else {
      const { type, agentId: claimed } = e as SekimoriEvent;
      if (!isAgentEventType(type)) errors.push(`${where}.type: ${JSON.stringify(type.slice(0, 64))} is not an agent event type`);
      if (claimed !== agentId) errors.push(`${where}.agentId: does not match the client certificate`);
    }
  }
  for (let i = 1; i < events.length && !errors.length; i++) {
    if ((events[i] as SekimoriEvent).seq <= (events[i - 1] as SekimoriEvent).seq) errors.push(`events[${i}].seq: must increase within a batch`);
  }
  if (errors.length) throw new HttpError(400, 'invalid_events', `${errors.length} problem(s) in the batch; nothing was stored`, errors);
  return events as SekimoriEvent[];
}

/** Shape-checked events → checked events (hash and data verdicts, canonical data JSON). */
export function checkEvents(events: readonly SekimoriEvent[]): CheckedEvent[] {
  let explained = 0;
  return events.map(({ data, ...head }) => {
    const valid = eventDataValid(head.type, data);
    const dataErrors = valid ? null : explained++ < EXPLAINED_PER_BATCH ? eventDataErrors(head.type, data) : [];
    const dataJson = canonicalJson(data);
    return { ...head, user: head.user ?? null, dataJson, hashOk: eventHashWithData(head.prevHash, head, dataJson) === head.hash, dataErrors };
  });
}

/** An upload body as received (UTF-8 JSON) → checked events; HttpError 400/413 as parseBatch. */
export function checkUpload(body: Uint8Array, agentId: string): CheckedEvent[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch (e) {
    throw new HttpError(400, 'malformed_json', `malformed JSON: ${(e as Error).message}`);
  }
  return checkEvents(parseBatch(parsed, agentId));
}
