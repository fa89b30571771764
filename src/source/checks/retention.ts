import { formatDuration } from '../../ops/duration.js';
import { setVariable } from './settings.js';
import { byDb, type CheckResult, type Flavour, pass, type Source, type Variables, warn } from './types.js';

/** The snapshot rate the retention check assumes; a guess, and the output says so. */
const ASSUMED_SNAPSHOT_ROWS_PER_SECOND = 100_000;

/** Seconds a binlog file is kept, or null when the server never purges them on its own. */
function retentionSeconds(flavour: Flavour, v: Variables): { seconds: number | null; setting: string } {
  if (flavour === 'mysql' && v.binlog_expire_logs_auto_purge === 'OFF') return { seconds: null, setting: 'binlog_expire_logs_auto_purge=OFF' };
  const seconds = Number(v.binlog_expire_logs_seconds ?? 0);
  if (seconds > 0) return { seconds, setting: `binlog_expire_logs_seconds=${seconds}` };
  // expire_logs_days is the older setting; MySQL 8.0 still honours it when binlog_expire_logs_seconds is 0.
  const days = Number(v.expire_logs_days ?? 0);
  if (days > 0) return { seconds: days * 86_400, setting: `expire_logs_days=${days}` };
  return { seconds: null, setting: v.binlog_expire_logs_seconds !== null ? 'binlog_expire_logs_seconds=0' : 'expire_logs_days=0' };
}

export async function checkRetention(s: Source): Promise<CheckResult[]> {
  let rows = 0;
  for (const [db, names] of byDb(s.tables)) {
    const [r] = await s.conn.query('SELECT SUM(TABLE_ROWS) AS n FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?)', [db, names]);
    rows += Number((r as { n: string | number | null }[])[0]?.n ?? 0);
  }
  const estimate = rows / ASSUMED_SNAPSHOT_ROWS_PER_SECOND;
  const estimateText = `snapshot estimate ~${formatDuration(estimate)} (${rows.toLocaleString('en-US')} rows by the server's TABLE_ROWS estimate, at an assumed ${ASSUMED_SNAPSHOT_ROWS_PER_SECOND.toLocaleString('en-US')} rows/s)`;
  const { seconds, setting } = retentionSeconds(s.flavour, s.vars);
  if (seconds === null) return [pass('binlog retention', `binlogs are never purged automatically (${setting}); ${estimateText}`)];
  const found = `binlogs kept ${formatDuration(seconds)} (${setting}); ${estimateText}`;
  if (seconds >= 2 * estimate) return [pass('binlog retention', found)];
  // The binlog from a snapshot's start must survive until the stream has read it, and a stopped connector
  // must be restarted within the retention too, hence at least a week.
  const wanted = Math.max(7, Math.ceil((2 * estimate) / 86_400)) * 86_400;
  return [
    warn(
      'binlog retention',
      `${found}: less than twice the snapshot time, so binlogs written during the snapshot may be purged before the stream reads them`,
      setVariable(s.flavour, 'binlog_expire_logs_seconds', String(wanted)),
    ),
  ];
}
