import type { Command } from 'commander';

/** `tidemark check -c <file>`: is the source ready for capture? */
export function registerCheckCommand(program: Command, setExitCode: (code: number) => void): void {
  void program;
  void setExitCode;
}
