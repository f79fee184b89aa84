import { join } from 'node:path';

/** Files of a console data folder. Keys are 0600; the database never holds the secret key. */
export function consolePaths(dataDir: string) {
  return {
    dataDir,
    config: join(dataDir, 'config.json'),
    db: join(dataDir, 'console.db'),
    caCert: join(dataDir, 'ca.pem'),
    caKey: join(dataDir, 'ca-key.pem'),
    serverCert: join(dataDir, 'server.pem'),
    serverKey: join(dataDir, 'server-key.pem'),
    policyKey: join(dataDir, 'policy-signing-key.pem'),
    policyPublicKey: join(dataDir, 'policy-signing-key.pub.pem'),
    secretKey: join(dataDir, 'secret.key'),
    initialAdmin: join(dataDir, 'initial-admin.txt'),
  };
}
export type ConsolePaths = ReturnType<typeof consolePaths>;

export interface ConsoleConfig {
  organisation: string;
  sans: string[];
}
