/**
 * tidemark's own files (checkpoint, output, dead letters, lock) hold what the source holds: they are created
 * readable by their owner only, in directories only the owner can enter, whatever the umask.
 */
import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';

export const PRIVATE_FILE = 0o600;
const PRIVATE_DIR = 0o700;

/** Creates the file's directory (and parents) private, when missing; existing directories keep their mode. */
export function privateDirFor(file: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: PRIVATE_DIR });
}

/** Creates an empty private file when there is none, so a library opening it later keeps its mode. */
export function touchPrivate(file: string): void {
  privateDirFor(file);
  if (!existsSync(file)) closeSync(openSync(file, 'a', PRIVATE_FILE));
}
