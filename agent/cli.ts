/**
 * `sekimori-agent` command line. Capability folders add their commands to `commands`. Commands
 * load their code when run: the service (`run`) then never holds what only enrolment needs (the
 * X.509/ASN.1 libraries), which keeps the idle agent's memory down.
 */

type Command = { summary: string; run(args: string[]): Promise<number> };

export const commands: Record<string, Command> = {
  enroll: { summary: 'enroll --console URL --token T --ca-fingerprint FP [--state DIR] [--monitor]', run: async (a) => (await import('./enroll.js')).enrollCommand(a) },
  run: { summary: 'run [--state DIR]   the service', run: async (a) => (await import('./run.js')).runCommand(a) },
  status: { summary: 'status [--state DIR] [--json]', run: async (a) => (await import('./status.js')).statusCommand(a) },
  baseline: { summary: 'baseline --out FILE [--scope DIR ...] [--admindir DIR] [--root DIR]   reference inventory for the software allowlist', run: async (a) => (await import('./software/cli.js')).baselineCommand(a) },
  apply: { summary: 'apply <申請番号> --reason TEXT [--hours N]   一時許可の申請 / apply for a temporary USB exception', run: async (a) => (await import('./usb/apply-cli.js')).applyCommand(a) },
  'mfa-verify': { summary: 'mfa-verify --user NAME [--state DIR] < code   (exit 0 accept, 1 reject)', run: async (a) => (await import('./mfa/cli.js')).mfaVerifyCommand(a) },
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const cmd = name ? commands[name] : undefined;
  if (!cmd) {
    process.stderr.write('使い方 / usage: sekimori-agent <command>\n' + Object.entries(commands).map(([k, c]) => `  ${k.padEnd(12)} ${c.summary}`).join('\n') + '\n');
    return name === undefined || name === 'help' || name === '--help' ? 0 : 2;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    process.stderr.write(`sekimori-agent ${name}: ${(e as Error).message}\n`);
    return 2;
  }
}
