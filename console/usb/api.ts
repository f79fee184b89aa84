/** HTTP API of the removable-media feature: each agent fetches its own exceptions (一時許可). */
import type { ConsoleContext, Route } from '../module.js';
import { exceptionsForAgent } from './store.js';

export function usbRoutes(ctx: ConsoleContext): Route[] {
  return [
    {
      method: 'GET',
      path: '/api/agent/usb/exceptions',
      auth: 'agent',
      handle: (req) => ({ status: 200, json: exceptionsForAgent(ctx, req.agentId!) }),
    },
  ];
}
