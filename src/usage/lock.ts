// One writer per usage store: a lock file holding the writer's pid, so two llmtaps never overwrite each other's records.
import { open, readdir, readFile, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export type LockResult = { held: true; release(): Promise<void> } | { held: false; owner: number };

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  // Our own pid in the lock is a previous run's (a restarted container often gets the same pid).
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes `<file>.lock`, or reports the live process that holds it; a lock left by a dead process is taken over. */
export async function lockStore(file: string): Promise<LockResult> {
  const lock = `${file}.lock`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(lock, 'wx');
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return {
        held: true,
        async release() {
          const owner = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
          if (owner === process.pid) await unlink(lock).catch(() => {});
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
    if (alive(owner)) return { held: false, owner };
    await unlink(lock).catch(() => {});
  }
  throw new Error(`cannot take the lock ${lock}: it keeps coming back`);
}

/** Temp files left by writers that died mid-write (only safe to call while holding the lock). */
export async function removeStaleTemps(file: string): Promise<void> {
  const dir = dirname(file);
  const prefix = `.${basename(file)}.`;
  const names = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(names.filter((n) => n.startsWith(prefix) && n.endsWith('.tmp')).map((n) => unlink(join(dir, n)).catch(() => {})));
}
