import { describe, expect, it } from 'vitest';
import { describeBinlogError } from '../../src/source/binlog.js';

/** An error as mysql2 hands over the server's replication error 1236. */
const e1236 = (message: string) => Object.assign(new Error(message), { errno: 1236, code: 'ER_SOURCE_FATAL_ERROR_READING_BINLOG' });

describe('describeBinlogError tells the causes of error 1236 apart', () => {
  it('another client with the same replica server id', () => {
    for (const text of [
      "A replica with the same server_uuid/server_id as this replica has connected to the source; the first event 'binlog.000003' at 4",
      'A slave with the same server_uuid/server_id as this slave has connected to the master',
    ]) {
      const err = describeBinlogError(e1236(text), 'after binlog.000003:4', 5400);
      expect(err.message).toMatch(/same replica server id \(5400\).*source\.serverId/);
      expect(err.message).not.toMatch(/purged/);
    }
  });

  it('a server that lacks transactions the checkpoint has', () => {
    for (const text of [
      "Replica has more GTIDs than the source has, using the source's SERVER_UUID.",
      "Error: connecting slave requested to start from GTID 0-1-500, which is not in the master's binlog. Since the master's binlog contains GTIDs with higher sequence numbers, it probably means that the slave has diverged due to executing extra erroneous transactions",
    ]) {
      expect(describeBinlogError(e1236(text), '').message).toMatch(/has not executed every transaction the checkpoint has/);
    }
  });

  it('a purged binlog', () => {
    for (const text of [
      'Cannot replicate because the source purged required binary logs.',
      'Could not find first log file name in binary log index file',
      "Error: connecting slave requested to start from GTID 0-1-5, which is not in the master's binlog",
    ]) {
      expect(describeBinlogError(e1236(text), '').message).toMatch(/no longer on the server.*snapshot\.mode: when_needed/);
    }
  });
});
