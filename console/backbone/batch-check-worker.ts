/**
 * The batch-check worker thread (started by batch-checker.ts): upload bodies in, checked events or
 * the refusal out, one answer per message. It holds nothing between messages and never touches
 * the database.
 */
import { parentPort } from 'node:worker_threads';
import { HttpError } from '../module.js';
import { checkUpload } from './batch-check.js';
import type { CheckReply, CheckRequest } from './batch-checker.js';

const port = parentPort;
if (!port) throw new Error('batch-check-worker: not started as a worker thread');
port.on('message', (m: CheckRequest) => {
  let reply: CheckReply;
  try {
    reply = { id: m.id, events: checkUpload(m.body, m.agentId) };
  } catch (e) {
    reply =
      e instanceof HttpError
        ? { id: m.id, refusal: { status: e.status, code: e.code, message: e.message, details: e.details ?? null } }
        : { id: m.id, failure: (e as Error).stack ?? String(e) };
  }
  port.postMessage(reply);
});
