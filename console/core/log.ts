/** The console's log line on stderr (journald keeps it for a service): `[console] <ISO time> <message>`. */
export function consoleLog(message: string): void {
  process.stderr.write(`[console] ${new Date().toISOString()} ${message}\n`);
}
