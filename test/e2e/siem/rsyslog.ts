/**
 * The siem tier's helpers: the rsyslog runner and the store writer live in bench/siem-rsyslog.ts
 * (bench/siem uses them too).
 */
export * from '../../../bench/siem-rsyslog.js';
