/**
 * The worker port's door process (./door.ts): listens, turns away what its policy refuses, and
 * hands every admitted connection — paused, nothing read — to the coordinator over the IPC channel.
 * It runs at nice 19, so a flood of connection attempts takes only the CPU the run leaves idle, and
 * exits when the coordinator closes the channel (or dies).
 */
import net from 'node:net';
import { setPriority } from 'node:os';
import { DoorPolicy, type DoorCommand, type DoorReport } from './door.js';

try { setPriority(19); } catch { /* not permitted here: the door still works, at the coordinator's priority */ }

const report = (m: DoorReport) => process.send?.(m);
let policy: DoorPolicy | undefined;

process.on('disconnect', () => process.exit(0));
process.on('message', (c: DoorCommand) => {
  if (c.t === 'listen' && !policy) {
    const p = new DoorPolicy(c.limits);
    policy = p;
    // paused: the coordinator's node:http reads the request, not this process
    const server = net.createServer({ pauseOnConnect: true }, (socket) => {
      socket.on('error', () => undefined);
      const from = socket.remoteAddress ?? '?';
      if (!p.admit(from)) { socket.destroy(); return; }
      // keepOpen false: this process's copy of the socket is closed once it is sent
      const admit: DoorReport = { t: 'admit', from };
      process.send?.(admit, socket, { keepOpen: false }, (e: Error | null) => { if (e) { p.release(from); socket.destroy(); } });
    });
    server.once('error', (e: NodeJS.ErrnoException) => { report({ t: 'error', code: e.code ?? e.message }); process.exitCode = 1; });
    server.listen(c.port, c.host, () => {
      const a = server.address();
      report({ t: 'listening', port: typeof a === 'object' && a ? a.port : c.port });
    });
  } else if (c.t === 'release') policy?.release(c.from);
  else if (c.t === 'penalise') { policy?.penalise(c.from); report({ t: 'penalised' }); }
});
