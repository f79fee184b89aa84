// QEMU guestfwd `cmd:` helper, one process per guest connection: bridges stdin/stdout to the
// console on host loopback (a chardev target would carry only one connection for the VM's life).
import { connect } from 'node:net';
const s = connect(Number(process.argv[2]), '127.0.0.1');
process.stdin.pipe(s);
s.pipe(process.stdout);
const bye = () => process.exit(0);
s.on('close', bye);
s.on('error', bye);
process.stdin.on('end', () => s.end());
setTimeout(bye, 30 * 60_000).unref(); // bounded
