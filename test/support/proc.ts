/**
 * Linux /proc readers shared by the door test (test/fleet-hostile.test.ts), the hostile-peers
 * benchmark (scripts/bench-hostile.ts) and the churn soak (scripts/soak-churn.ts).
 */
import { readFileSync, readdirSync } from 'node:fs';

/** /proc/PID/stat's fields after the command name (index 0 is the state; 11, 12 utime, stime; 16 nice). */
export function procStat(pid: number | 'self'): string[] {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return f.slice(f.lastIndexOf(')') + 2).split(' ');
}

/** User + system CPU seconds of process `pid` so far. */
export function cpuSeconds(pid: number): number {
  const f = procStat(pid);
  return (Number(f[11]) + Number(f[12])) / 100; // clock ticks (USER_HZ = 100)
}

/** The worker-port door processes (src/fleet/coordinator/door-process.ts) that `parent` started: pid → nice. */
export function doorProcesses(parent: number | 'self'): Map<number, number> {
  const found = new Map<number, number>();
  for (const task of readdirSync(`/proc/${parent}/task`)) {
    for (const pid of readFileSync(`/proc/${parent}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('door-process')) found.set(pid, Number(procStat(pid)[16]));
      } catch { /* gone meanwhile */ }
    }
  }
  return found;
}

/** Resident memory of `pid` by kind, in bytes, from /proc/PID/status: anonymous (heaps, wasm memory), file-backed (code, mapped files), shared. */
export function rssParts(pid: number | 'self'): { anon: number; file: number; shmem: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kB = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { anon: kB('RssAnon'), file: kB('RssFile'), shmem: kB('RssShmem') };
}
