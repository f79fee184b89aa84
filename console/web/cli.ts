/** `sekimori-console user add|list|disable|enable|unlock` — console accounts (admin, auditor). */
import { parseArgs } from 'node:util';
import { generateSecret, generateURI } from 'otplib';
import { generatePassword } from '../core/passwords.js';
import type { CliCommand, ConsoleContext } from '../module.js';
import { addAccount, listAccounts, setAccountDisabled, unlockAccount, type Role } from './auth.js';

const USAGE = `使い方 / usage: sekimori-console user <add|list|disable|enable|unlock> --data DIR …
  add     --name NAME --role admin|auditor|approver [--json]   アカウント追加(パスワードとTOTP秘密鍵を表示) / new account
  list    [--json]
  disable --name NAME | enable --name NAME | unlock --name NAME`;

export const userCommand: CliCommand = {
  summary: 'user add --name NAME --role admin|auditor|approver | list | disable | enable | unlock   コンソールアカウント / console accounts',
  async run(args, open) {
    const [sub, ...rest] = args;
    const { values } = parseArgs({
      args: rest,
      options: { data: { type: 'string' }, name: { type: 'string' }, role: { type: 'string', default: 'auditor' }, json: { type: 'boolean', default: false } },
    });
    const ctx: ConsoleContext = open();
    try {
      if (sub === 'list') {
        const list = listAccounts(ctx.db);
        process.stdout.write(values.json ? JSON.stringify(list, null, 2) + '\n' : list.map((a) => `${a.username}\t${a.role}${a.disabled ? '\tdisabled' : ''}\n`).join(''));
        return 0;
      }
      const name = values.name;
      if (!name) {
        process.stderr.write(USAGE + '\n');
        return 2;
      }
      if (sub === 'add') {
        if (values.role !== 'admin' && values.role !== 'auditor' && values.role !== 'approver') throw new Error('--role admin|auditor|approver');
        const password = generatePassword();
        const secret = generateSecret();
        await addAccount(ctx, name, values.role as Role, 'cli', { password, secret });
        const uri = generateURI({ issuer: `Sekimori ${ctx.organisation()}`, label: name, secret });
        if (values.json) process.stdout.write(JSON.stringify({ username: name, role: values.role, password, totpSecret: secret, totpUri: uri }) + '\n');
        else process.stdout.write(`username: ${name}\nrole: ${values.role}\npassword: ${password}\ntotp-secret: ${secret}\ntotp-uri: ${uri}\n`);
        return 0;
      }
      if (sub === 'disable' || sub === 'enable') {
        setAccountDisabled(ctx, name, sub === 'disable', 'cli');
        return 0;
      }
      if (sub === 'unlock') {
        unlockAccount(ctx, name, 'cli');
        return 0;
      }
      process.stderr.write(USAGE + '\n');
      return 2;
    } finally {
      (ctx as ConsoleContext & { close?: () => void }).close?.();
    }
  },
};
