import type { Connection } from 'mysql2/promise';
import { serverIdRange } from '../../config/load.js';
import { processList } from '../server.js';
import { hasPrivilege } from './grants.js';
import { abbreviate, type CheckResult, fail, pass, type Source, warn } from './types.js';

function columnOf(row: Record<string, unknown>, name: string): unknown {
  const key = Object.keys(row).find((k) => k.toLowerCase() === name);
  return key === undefined ? undefined : row[key];
}

/** Replicas registered with the source; an Error when the account may not list them. */
async function registeredReplicas(conn: Connection): Promise<{ id: number; where: string }[] | Error> {
  let rows: unknown;
  try {
    try {
      [rows] = await conn.query('SHOW REPLICAS');
    } catch (err) {
      // MariaDB, and MySQL before 8.0.22, know only the older name.
      if ((err as { code?: string }).code !== 'ER_PARSE_ERROR') throw err;
      [rows] = await conn.query('SHOW SLAVE HOSTS');
    }
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
  return (rows as Record<string, unknown>[]).map((r) => ({
    id: Number(columnOf(r, 'server_id')),
    where: `${String(columnOf(r, 'host') || '?')}:${String(columnOf(r, 'port') ?? '?')}`,
  }));
}

/** The first id of a run of `size` ids that avoids every id in `taken`, starting the search at `from`. */
function freeServerId(from: number, size: number, taken: number[]): number {
  let first = from;
  for (;;) {
    const clash = taken.filter((id) => id >= first && id < first + size);
    if (clash.length === 0) return first;
    first = Math.max(...clash) + 1;
  }
}

export async function checkServerIds(s: Source): Promise<CheckResult[]> {
  const { first, size } = serverIdRange(s.config);
  const last = first + size - 1;
  const range = size === 1 ? `${first}` : `${first}-${last}`;
  const inRange = (id: number) => id >= first && id <= last;
  const ownId = Number(s.vars.server_id);
  const registered = await registeredReplicas(s.conn);
  const replicas = registered instanceof Error ? [] : registered;

  const clashes = [
    ...(inRange(ownId) ? [`the source itself has server_id ${ownId}`] : []),
    ...replicas.filter((r) => inRange(r.id)).map((r) => `replica ${r.where} is registered with server_id ${r.id}`),
  ];
  const idsText = `ids ${range} (source.serverId and the next snapshot.parallelism, one per binlog connection)`;
  const others =
    registered instanceof Error
      ? ''
      : replicas.length > 0
        ? `, nor a registered replica's (${replicas.map((r) => r.id).join(', ')})`
        : ', no replica registered';
  const clear = `ids ${range}: not the source's server_id (${ownId})${others}`;
  if (clashes.length > 0) {
    const free = freeServerId(first, size, [ownId, ...replicas.map((r) => r.id)]);
    return [
      fail(
        'server id',
        `${clashes.join('; ')}: within this connector's ${idsText}. The server drops one of two binlog connections with the same id, losing its events`,
        `source.serverId: ${free}`,
      ),
    ];
  }

  const readers = (await processList(s.conn)).filter((p) => p.command.startsWith('Binlog Dump')).map((p) => `${p.user}@${p.host.replace(/:\d+$/, '')}`);
  const unseen = [
    ...(registered instanceof Error ? [`registered replicas (${registered.message})`] : []),
    // Without PROCESS, the process list shows only this account's own connections.
    ...(hasPrivilege(s.grants.global, 'PROCESS') ? [] : ["other accounts' binlog readers (needs the PROCESS privilege)"]),
  ];
  const cannotSee = unseen.length > 0 ? `. Cannot see: ${unseen.join('; ')}` : '';
  // Each registered replica accounts for one reader; the rest never told the source their id.
  const unidentified = readers.length - replicas.length;
  if (unidentified > 0) {
    return [
      warn(
        'server id',
        `${clear}; but ${unidentified} of the ${readers.length} binlog reader(s) (${abbreviate([...new Set(readers)])}) have no registered server id ` +
          `(replicas without report_host and CDC clients, a running sync of this connector included, do not register one; a reader that disconnected ` +
          `may linger until the server next writes to it), so whether they use ${idsText} cannot be seen${cannotSee}`,
        `Make sure none of them uses an id in ${range} (on a replica: SELECT @@server_id; for another tidemark: its source.serverId to source.serverId + snapshot.parallelism); if one does, set source.serverId to a free range here.`,
      ),
    ];
  }
  return [pass('server id', `${clear}; no other binlog reader connected${cannotSee}`)];
}
