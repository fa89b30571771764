import type { Command } from 'commander';

/** `tidemark status` and `tidemark reset`: read and forget the checkpoint. */
export function registerStatusCommands(program: Command, setExitCode: (code: number) => void): void {
  void program;
  void setExitCode;
}
