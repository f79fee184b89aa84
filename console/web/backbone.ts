/**
 * The backbone functions the pages use. backbone/module.ts and backbone/cli.ts import each other;
 * loading module.ts first is the order that works, whoever imports the web console first.
 */
export { createEnrollToken } from '../backbone/module.js';
export { listAgents, type AgentSummary } from '../backbone/cli.js';
