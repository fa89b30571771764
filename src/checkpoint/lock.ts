/**
 * One sync per checkpoint. Two would share one replica server id, and the server would drop one's binlog
 * connection for the other's (which then looks like a purged binlog), while both commit to one checkpoint
 * and one output. The lock is a file beside the checkpoint naming the holder's pid; a holder that is gone
 * (killed with -9) leaves a stale file, which the next sync takes over.
 */
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { CheckpointError, fileFailure } from '../errors.js';
import { PRIVATE_FILE, privateDirFor } from '../files.js';

export class CheckpointLock {
  private constructor(private readonly path: string) {}

  /** Takes the lock of the checkpoint at `checkpointPath`, or throws naming the process that holds it. */
  static acquire(checkpointPath: string): CheckpointLock {
    const path = `${checkpointPath}.lock`;
    privateDirFor(path);
    for (let attempt = 0; ; attempt++) {
      try {
        writeFileSync(path, `${JSON.stringify({ pid: process.pid, since: new Date().toISOString() })}\n`, { flag: 'wx', mode: PRIVATE_FILE });
        return new CheckpointLock(path);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // A lock file left empty by a full disk counts as stale next time, as a dead holder's does.
        if (code !== 'EEXIST') throw new CheckpointError(fileFailure(`writing the checkpoint's lock file ${path}`, err), { cause: err });
        if (attempt > 0) throw err;
      }
      const holder = readHolder(path);
      if (holder && holder.pid !== process.pid && isRunningTidemark(holder.pid)) {
        throw new CheckpointError(
          `another tidemark (pid ${holder.pid}, since ${holder.since}) is running on the checkpoint ${checkpointPath}. ` +
            'One sync per checkpoint: stop that one first, or give this config its own checkpoint.path and name. `tidemark status` works beside it.',
        );
      }
      // Stale: its process is gone. Only one of two starting syncs wins the exclusive create that follows.
      unlinkSync(path);
    }
  }

  release(): void {
    if (readHolder(this.path)?.pid === process.pid) unlinkSync(this.path);
  }

  /** The pid holding the lock of a checkpoint, when a running tidemark does. */
  static holder(checkpointPath: string): number | undefined {
    const holder = readHolder(`${checkpointPath}.lock`);
    return holder && isRunningTidemark(holder.pid) ? holder.pid : undefined;
  }
}

function readHolder(path: string): { pid: number; since: string } | undefined {
  try {
    const h = JSON.parse(readFileSync(path, 'utf8')) as { pid?: unknown; since?: unknown };
    return typeof h.pid === 'number' ? { pid: h.pid, since: String(h.since) } : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the pid is a live process running tidemark: a pid reused by something else after a kill does not count. */
function isRunningTidemark(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('tidemark');
  } catch {
    // No /proc (not Linux): a live process with that pid is taken for the holder.
    return true;
  }
}
