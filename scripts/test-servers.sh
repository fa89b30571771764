#!/usr/bin/env bash
# Local test servers for tidemark: MySQL 9.7 (Debian sid, in a debootstrap chroot), MariaDB 10.11
# (Debian's mariadb-server), Apache Kafka 3.9.1 (KRaft, jars from Maven) and PostgreSQL (Debian's
# postgresql), each on 127.0.0.1.
#
#   scripts/test-servers.sh up [mysql|mariadb|kafka|postgres ...]   install what is missing, start, wait until ready
#   scripts/test-servers.sh down [...]                     stop
#   scripts/test-servers.sh up mysql-replica|mariadb-replica   a failover pair: a source and its replica (not in a bare `up`)
#   scripts/test-servers.sh up kafka4                      Apache Kafka 4.x on its own port (not in a bare `up`)
#   scripts/test-servers.sh up|down|kill mysql-fault|mariadb-fault   a server of the fault tests' own, to stop (TERM)
#                                                          or kill -9 under a running sync (not in a bare `up`)
#   scripts/test-servers.sh kill kafka|kafka4              kill -9 a broker (the fault tests' private ones, by TIDEMARK_CACHE_DIR)
#   scripts/test-servers.sh reset-replica mysql|mariadb    empty that pair, its replica replicating afresh from its source
#   scripts/test-servers.sh errlog mysql|mariadb[-...]    the end of a server's error log
#   scripts/test-servers.sh status                         versions and URLs of the running servers
#   scripts/test-servers.sh env                            the URLs as KEY=value lines (for the test setup)
#
# Idempotent: a server that already answers is left alone. Installs are cached under
# $TIDEMARK_CACHE_DIR (default ~/.cache/tidemark); data and logs live under $TIDEMARK_CACHE_DIR/run.
set -euo pipefail

CACHE_DIR="${TIDEMARK_CACHE_DIR:-$HOME/.cache/tidemark}"
RUN_DIR="$CACHE_DIR/run"
# Below Linux's ephemeral range (32768-60999), so an outgoing connection never holds a port a
# restarting server needs.
MYSQL_PORT="${TIDEMARK_MYSQL_PORT:-23097}"
MARIADB_PORT="${TIDEMARK_MARIADB_PORT:-23106}"
KAFKA_PORT="${TIDEMARK_KAFKA_PORT:-29092}"
KAFKA_CONTROLLER_PORT="${TIDEMARK_KAFKA_CONTROLLER_PORT:-29093}"
KAFKA4_PORT="${TIDEMARK_KAFKA4_PORT:-29192}"
KAFKA4_CONTROLLER_PORT="${TIDEMARK_KAFKA4_CONTROLLER_PORT:-29193}"
KAFKA4_VERSION=4.4.0
POSTGRES_PORT="${TIDEMARK_POSTGRES_PORT:-25432}"
MYSQL_ROOT="$CACHE_DIR/mysql-sid-root"
KAFKA_LIBS="$CACHE_DIR/kafka-3.9.1-libs"
KAFKA4_LIBS="$CACHE_DIR/kafka-$KAFKA4_VERSION-libs"
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A fixed KRaft cluster id: the storage is formatted once and must keep matching it.
KAFKA_CLUSTER_ID="dGlkZW1hcmstdGVzdC1rYQ"

log() { echo "[test-servers] $*" >&2; }
die() { echo "[test-servers] error: $*" >&2; exit 1; }

apt_updated=0
apt_install() {
  if [ "$(id -u)" != 0 ]; then die "need root to install Debian packages: $*"; fi
  if [ $apt_updated = 0 ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >"$RUN_DIR/apt.log" 2>&1 || die "apt-get update failed, see $RUN_DIR/apt.log"
    apt_updated=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >>"$RUN_DIR/apt.log" 2>&1 ||
    die "apt-get install $* failed, see $RUN_DIR/apt.log"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Runs SQL through the host's MariaDB client over a Unix socket (it speaks to MySQL 9.7 as well).
sql_socket() { local sock=$1; shift; mariadb --no-defaults -uroot -S "$sock" -N -B -e "$*"; }
sql_tcp() { local port=$1; shift; mariadb --no-defaults -uroot -h127.0.0.1 -P"$port" --skip-ssl -N -B -e "$*" 2>/dev/null; }

wait_for() { # name seconds command...
  local name=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then return 1; fi
    sleep 0.5
  done
}

# Whether the process a pid file names runs. A pid file outlives its process when the machine or container stops, and
# on the next boot its number may be another process's (a shared server of the next run): ours started before the
# file was written, so a process younger than the file is not ours and is left alone.
pid_alive() {
  local file=$1 pid=${2:-}
  [ -f "$file" ] || return 1
  [ -n "$pid" ] || pid=$(head -n 1 "$file")
  kill -0 "$pid" 2>/dev/null || return 1
  local started
  started=$(date -d "$(ps -o lstart= -p "$pid")" +%s 2>/dev/null) || return 1
  [ "$started" -le $(($(stat -c %Y "$file") + 2)) ]
}

ensure_client() { command -v mariadb >/dev/null || apt_install mariadb-client; }

# ---------------------------------------------------------------- MySQL 9.7
mysql_install() {
  if [ -x "$MYSQL_ROOT/usr/sbin/mysqld" ]; then return; fi
  command -v debootstrap >/dev/null || apt_install debootstrap
  log "installing MySQL from Debian sid into $MYSQL_ROOT (first time only, ~30 s, ~560 MB)"
  rm -rf "$MYSQL_ROOT.partial"
  debootstrap --variant=minbase --include=mysql-server-core sid "$MYSQL_ROOT.partial" >"$RUN_DIR/debootstrap.log" 2>&1 ||
    die "debootstrap failed, see $RUN_DIR/debootstrap.log"
  mv "$MYSQL_ROOT.partial" "$MYSQL_ROOT"
}

mysql_up() {
  local dir=/var/lib/tidemark-mysql sock="$MYSQL_ROOT/run/tidemark-mysql.sock"
  if sql_tcp "$MYSQL_PORT" "SELECT 1" >/dev/null; then return; fi
  # A server of ours that does not answer here (other port, hung) still holds the datadir.
  stop_server mysql
  ensure_client
  mysql_install
  if [ ! -d "$MYSQL_ROOT$dir/mysql" ]; then
    log "initializing MySQL datadir"
    rm -rf "${MYSQL_ROOT:?}$dir"
    cat >"$MYSQL_ROOT/tmp/tidemark-init.sql" <<'SQL'
CREATE USER 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
SQL
    chroot "$MYSQL_ROOT" /usr/sbin/mysqld --no-defaults --user=root --datadir="$dir" \
      --initialize-insecure --init-file=/tmp/tidemark-init.sql >"$RUN_DIR/mysql-init.log" 2>&1 ||
      die "mysqld --initialize-insecure failed, see $RUN_DIR/mysql-init.log"
  fi
  log "starting MySQL on 127.0.0.1:$MYSQL_PORT"
  setsid nohup chroot "$MYSQL_ROOT" /usr/sbin/mysqld --no-defaults --user=root --datadir="$dir" \
    --port="$MYSQL_PORT" --bind-address=127.0.0.1 --socket=/run/tidemark-mysql.sock \
    --pid-file=/run/tidemark-mysql.pid --log-error=/var/log/tidemark-mysql.err \
    --log-bin=binlog --server-id=97 --gtid-mode=ON --enforce-gtid-consistency=ON \
    --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL \
    --secure-file-priv="" --mysqlx=OFF --performance-schema=OFF \
    --innodb-buffer-pool-size=256M --max-connections=500 \
    >"$RUN_DIR/mysql.out" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/mysql.pid"
  wait_for mysql 120 sql_tcp "$MYSQL_PORT" "SELECT 1" ||
    die "MySQL did not answer on port $MYSQL_PORT within 120 s; see $MYSQL_ROOT/var/log/tidemark-mysql.err"
  [ -S "$sock" ] || true
}

# Stops the server whose pid file is $RUN_DIR/<name>.pid: TERM, then KILL after 60 s.
stop_server() {
  local name=$1 pidfile="$RUN_DIR/$1.pid"
  if pid_alive "$pidfile"; then
    log "stopping $name"
    kill "$(cat "$pidfile")"
    wait_for "$name-stop" 60 bash -c "! kill -0 $(cat "$pidfile") 2>/dev/null" || kill -9 "$(cat "$pidfile")"
  fi
  rm -f "$pidfile"
}

mysql_down() { stop_server mysql; }

# ---------------------------------------------------------------- MariaDB 10.11
# MariaDB 10.11 makes no certificates of its own (MySQL does at initialisation). A CA of our own signs one
# for 127.0.0.1 and localhost, so tests can verify the chain and the host name against the CA's file.
mariadb_tls() {
  local tls=$1
  if [ -f "$tls/server-cert.pem" ]; then return; fi
  command -v openssl >/dev/null || apt_install openssl
  log "making a test CA and a server certificate for MariaDB in $tls"
  rm -rf "$tls.partial"; mkdir -p "$tls.partial"
  (
    cd "$tls.partial"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=tidemark test MariaDB CA" -keyout ca-key.pem -out ca.pem
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server-key.pem -out server.csr
    printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' 'basicConstraints=CA:FALSE' 'extendedKeyUsage=serverAuth' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 -extfile server.ext -out server-cert.pem
  ) >"$RUN_DIR/mariadb-tls.log" 2>&1 || die "making MariaDB's certificates failed, see $RUN_DIR/mariadb-tls.log"
  mv "$tls.partial" "$tls"
}

mariadb_up() {
  local dir="$RUN_DIR/mariadb" sock="$RUN_DIR/mariadb/mariadb.sock"
  if sql_tcp "$MARIADB_PORT" "SELECT 1" >/dev/null; then
    # Servers started before TLS was added to this script are restarted once to get it.
    if [ "$(sql_tcp "$MARIADB_PORT" "SELECT @@have_ssl")" = YES ]; then return; fi
    log "MariaDB runs without TLS: restarting it with the certificates of $dir/tls"
  fi
  stop_server mariadb
  command -v mariadbd >/dev/null && command -v mariadb-install-db >/dev/null || apt_install mariadb-server mariadb-client
  if [ ! -d "$dir/data/mysql" ]; then
    log "initializing MariaDB datadir"
    rm -rf "$dir"; mkdir -p "$dir"
    mariadb-install-db --no-defaults --user=root --datadir="$dir/data" --auth-root-authentication-method=normal \
      --skip-test-db >"$RUN_DIR/mariadb-init.log" 2>&1 || die "mariadb-install-db failed, see $RUN_DIR/mariadb-init.log"
  fi
  mariadb_tls "$dir/tls"
  log "starting MariaDB on 127.0.0.1:$MARIADB_PORT"
  setsid nohup mariadbd --no-defaults --user=root --datadir="$dir/data" \
    --port="$MARIADB_PORT" --bind-address=127.0.0.1 --socket="$sock" --pid-file="$dir/mariadb.pid" \
    --log-error="$dir/mariadb.err" --log-bin="$dir/data/binlog" --server-id=1011 \
    --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL \
    --ssl-ca="$dir/tls/ca.pem" --ssl-cert="$dir/tls/server-cert.pem" --ssl-key="$dir/tls/server-key.pem" \
    --innodb-buffer-pool-size=256M --max-connections=500 \
    >"$RUN_DIR/mariadb.out" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/mariadb.pid"
  wait_for mariadb 60 sql_socket "$sock" "SELECT 1" || die "MariaDB did not start; see $dir/mariadb.err"
  sql_socket "$sock" "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
    GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
  wait_for mariadb 30 sql_tcp "$MARIADB_PORT" "SELECT 1" || die "MariaDB did not answer on port $MARIADB_PORT"
}

mariadb_down() { stop_server mariadb; }

# ---------------------------------------------------------------- failover pairs (the failover tests)
# For each flavour, a primary and a replica replicating from it by GTID, so a test can promote the replica and
# point tidemark at it. The shared servers above cannot be that primary: other tests turn MySQL's gtid_mode OFF
# (a GTID replica stops at the first anonymous transaction) and run XA transactions (which a MySQL replica with
# filters refuses); a full replica of them would need a copy of hundreds of test databases that every test writes
# to; and a MariaDB replica filtered down to a few databases leaves the GTIDs of everything else out of its
# binlog, so a checkpoint taken on the primary is not valid on it. Only the failover tests use these servers (a
# reset drops every database on them); the failover tests start them, the default `up` does not.
MYSQL_SOURCE_PORT="${TIDEMARK_MYSQL_SOURCE_PORT:-23099}"
MYSQL_REPLICA_PORT="${TIDEMARK_MYSQL_REPLICA_PORT:-23098}"
MARIADB_SOURCE_PORT="${TIDEMARK_MARIADB_SOURCE_PORT:-23108}"
MARIADB_REPLICA_PORT="${TIDEMARK_MARIADB_REPLICA_PORT:-23107}"
REPL_USER=tidemark_repl
REPL_PASSWORD=tidemark-repl

user_databases() { sql_tcp "$1" "SELECT SCHEMA_NAME FROM INFORMATION_SCHEMA.SCHEMATA WHERE SCHEMA_NAME NOT IN ('mysql', 'sys', 'performance_schema', 'information_schema')"; }

drop_user_databases() {
  local port=$1 db
  for db in $(user_databases "$port"); do sql_tcp "$port" "DROP DATABASE \`$db\`" || die "cannot drop $db on port $port"; done
}

# Waits until the replica's I/O and SQL threads both run; otherwise prints the replica's errors and fails.
wait_replicating() { # port status-statement io-column sql-column
  local port=$1 query=$2 io=$3 sql=$4
  local check="mariadb --no-defaults -uroot -h127.0.0.1 -P$port --skip-ssl -B -e '$query' |
    awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) col[\$i] = i } NR == 2 { ok = \$col[\"$io\"] == \"Yes\" && \$col[\"$sql\"] == \"Yes\" } END { exit !ok }'"
  if wait_for replica 30 bash -c "$check"; then return; fi
  mariadb --no-defaults -uroot -h127.0.0.1 -P"$port" --skip-ssl -e "$query\\G" 2>&1 | grep -E "Running:|Error:" >&2 || true
  die "the replica on port $port does not replicate"
}

# One MySQL of a pair, from the chroot of the shared one, with its binlog settings: name port server-id [flags...]
mysql_instance_up() {
  local name=$1 port=$2 id=$3 dir=/var/lib/tidemark-$1; shift 3
  if sql_tcp "$port" "SELECT 1" >/dev/null; then return; fi
  stop_server "$name"
  ensure_client
  mysql_install
  if [ ! -d "$MYSQL_ROOT$dir/mysql" ]; then
    log "initializing the $name datadir"
    rm -rf "${MYSQL_ROOT:?}$dir"
    cat >"$MYSQL_ROOT/tmp/tidemark-$name-init.sql" <<SQL
CREATE USER 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
CREATE USER '$REPL_USER'@'127.0.0.1' IDENTIFIED BY '$REPL_PASSWORD';
GRANT REPLICATION SLAVE ON *.* TO '$REPL_USER'@'127.0.0.1';
SQL
    chroot "$MYSQL_ROOT" /usr/sbin/mysqld --no-defaults --user=root --datadir="$dir" \
      --initialize-insecure --init-file="/tmp/tidemark-$name-init.sql" >"$RUN_DIR/$name-init.log" 2>&1 ||
      die "mysqld --initialize-insecure failed, see $RUN_DIR/$name-init.log"
  fi
  log "starting $name on 127.0.0.1:$port"
  setsid nohup chroot "$MYSQL_ROOT" /usr/sbin/mysqld --no-defaults --user=root --datadir="$dir" \
    --port="$port" --bind-address=127.0.0.1 --socket="/run/tidemark-$name.sock" \
    --pid-file="/run/tidemark-$name.pid" --log-error="/var/log/tidemark-$name.err" \
    --log-bin=binlog --relay-log=relay --server-id="$id" --gtid-mode=ON --enforce-gtid-consistency=ON \
    --log-replica-updates=ON --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL \
    --secure-file-priv="" --mysqlx=OFF --performance-schema=OFF \
    --innodb-buffer-pool-size=128M --max-connections=200 "$@" \
    >"$RUN_DIR/$name.out" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$name.pid"
  wait_for "$name" 120 sql_tcp "$port" "SELECT 1" ||
    die "$name did not answer on port $port within 120 s; see $MYSQL_ROOT/var/log/tidemark-$name.err"
}

mysql_source_up() { mysql_instance_up mysql-source "$MYSQL_SOURCE_PORT" 99; }
mysql_source_down() { stop_server mysql-source; }

mysql_pair_start() {
  mysql_source_up
  mysql_instance_up mysql-replica "$MYSQL_REPLICA_PORT" 98 --read-only=ON
}

mysql_replica_up() {
  mysql_pair_start
  # A new datadir has no source yet; an existing one goes on replicating by itself.
  if [ -z "$(sql_tcp "$MYSQL_REPLICA_PORT" "SHOW REPLICA STATUS")" ]; then mysql_replica_reset; fi
}

mysql_replica_down() { stop_server mysql-replica; mysql_source_down; }

# Puts the pair back to "empty, the replica replicating from the source", whatever a test did (promoted the
# replica, wrote to it, so that it holds GTIDs its source lacks): in about a second, with no new datadir. The
# replica starts from the source's current GTIDs. The source's binlog moves to a new file, so the two servers'
# file names and positions never coincide by chance, and a test mixing them up cannot pass.
mysql_replica_reset() {
  mysql_pair_start
  local gtids
  sql_tcp "$MYSQL_REPLICA_PORT" "STOP REPLICA; RESET REPLICA ALL" || die "cannot stop the MySQL replica"
  drop_user_databases "$MYSQL_REPLICA_PORT"
  drop_user_databases "$MYSQL_SOURCE_PORT"
  sql_tcp "$MYSQL_SOURCE_PORT" "FLUSH BINARY LOGS" || die "cannot rotate the MySQL source's binlog"
  sql_tcp "$MYSQL_SOURCE_PORT" "PURGE BINARY LOGS TO '$(sql_tcp "$MYSQL_SOURCE_PORT" "SHOW BINARY LOG STATUS" | cut -f1)'"
  gtids=$(sql_tcp "$MYSQL_SOURCE_PORT" "SELECT @@GLOBAL.gtid_executed" | tr -d ' \n') || die "cannot read the MySQL source's gtid_executed"
  sql_tcp "$MYSQL_REPLICA_PORT" "RESET BINARY LOGS AND GTIDS; SET GLOBAL gtid_purged = '$gtids'; SET GLOBAL read_only = ON;
    CHANGE REPLICATION SOURCE TO SOURCE_HOST = '127.0.0.1', SOURCE_PORT = $MYSQL_SOURCE_PORT, SOURCE_USER = '$REPL_USER',
      SOURCE_PASSWORD = '$REPL_PASSWORD', SOURCE_AUTO_POSITION = 1, GET_SOURCE_PUBLIC_KEY = 1;
    START REPLICA" || die "cannot point the MySQL replica at its source"
  wait_replicating "$MYSQL_REPLICA_PORT" "SHOW REPLICA STATUS" Replica_IO_Running Replica_SQL_Running
}

# One MariaDB of a pair, with the shared one's binlog settings: name port server-id [flags...]
mariadb_instance_up() {
  local name=$1 port=$2 id=$3 dir="$RUN_DIR/$1"; shift 3
  local sock="$dir/mariadb.sock"
  if sql_tcp "$port" "SELECT 1" >/dev/null; then return; fi
  stop_server "$name"
  command -v mariadbd >/dev/null && command -v mariadb-install-db >/dev/null || apt_install mariadb-server mariadb-client
  if [ ! -d "$dir/data/mysql" ]; then
    log "initializing the $name datadir"
    rm -rf "$dir"; mkdir -p "$dir"
    mariadb-install-db --no-defaults --user=root --datadir="$dir/data" --auth-root-authentication-method=normal \
      --skip-test-db >"$RUN_DIR/$name-init.log" 2>&1 || die "mariadb-install-db failed, see $RUN_DIR/$name-init.log"
  fi
  log "starting $name on 127.0.0.1:$port"
  setsid nohup mariadbd --no-defaults --user=root --datadir="$dir/data" \
    --port="$port" --bind-address=127.0.0.1 --socket="$sock" --pid-file="$dir/mariadb.pid" \
    --log-error="$dir/mariadb.err" --log-bin="$dir/data/binlog" --relay-log="$dir/data/relay" --server-id="$id" \
    --log-slave-updates --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL \
    --innodb-buffer-pool-size=128M --max-connections=200 "$@" \
    >"$RUN_DIR/$name.out" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$name.pid"
  wait_for "$name" 60 sql_socket "$sock" "SELECT 1" || die "$name did not start; see $dir/mariadb.err"
  # Kept out of the binlog: neither server of a pair has a transaction the other lacks.
  sql_socket "$sock" "SET SESSION sql_log_bin = 0;
    CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
    CREATE USER IF NOT EXISTS '$REPL_USER'@'127.0.0.1' IDENTIFIED BY '$REPL_PASSWORD'; GRANT REPLICATION SLAVE ON *.* TO '$REPL_USER'@'127.0.0.1';"
  wait_for "$name" 30 sql_tcp "$port" "SELECT 1" || die "$name did not answer on port $port"
}

mariadb_source_up() { mariadb_instance_up mariadb-source "$MARIADB_SOURCE_PORT" 1013; }
mariadb_source_down() { stop_server mariadb-source; }

mariadb_pair_start() {
  mariadb_source_up
  mariadb_instance_up mariadb-replica "$MARIADB_REPLICA_PORT" 1012 --read-only
}

mariadb_replica_up() {
  mariadb_pair_start
  if [ -z "$(sql_tcp "$MARIADB_REPLICA_PORT" "SHOW SLAVE STATUS")" ]; then mariadb_replica_reset; fi
}

mariadb_replica_down() { stop_server mariadb-replica; mariadb_source_down; }

# As mysql_replica_reset; MariaDB's replica starts after the source's current GTID position (gtid_slave_pos).
mariadb_replica_reset() {
  mariadb_pair_start
  local pos
  sql_tcp "$MARIADB_REPLICA_PORT" "STOP SLAVE; RESET SLAVE ALL" || die "cannot stop the MariaDB replica"
  drop_user_databases "$MARIADB_REPLICA_PORT"
  drop_user_databases "$MARIADB_SOURCE_PORT"
  sql_tcp "$MARIADB_SOURCE_PORT" "FLUSH BINARY LOGS" || die "cannot rotate the MariaDB source's binlog"
  sql_tcp "$MARIADB_SOURCE_PORT" "PURGE BINARY LOGS TO '$(sql_tcp "$MARIADB_SOURCE_PORT" "SHOW MASTER STATUS" | cut -f1)'"
  pos=$(sql_tcp "$MARIADB_SOURCE_PORT" "SELECT @@GLOBAL.gtid_binlog_pos") || die "cannot read the MariaDB source's gtid_binlog_pos"
  sql_tcp "$MARIADB_REPLICA_PORT" "RESET MASTER; SET GLOBAL gtid_slave_pos = '$pos'; SET GLOBAL read_only = ON;
    CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = $MARIADB_SOURCE_PORT, MASTER_USER = '$REPL_USER',
      MASTER_PASSWORD = '$REPL_PASSWORD', MASTER_USE_GTID = slave_pos;
    START SLAVE" || die "cannot point the MariaDB replica at its source"
  wait_replicating "$MARIADB_REPLICA_PORT" "SHOW SLAVE STATUS" Slave_IO_Running Slave_SQL_Running
}

# ---------------------------------------------------------------- fault servers (the server restart tests)
# One server of each flavour that the fault tests stop with SIGTERM (`down`) or kill -9 (`kill`) under a running sync
# and start again (`up`, on the same datadir): the shared servers serve every other test, and the failover pairs
# must stay a source and its replica. Settings as the failover sources'; only the fault tests start them.
MYSQL_FAULT_PORT="${TIDEMARK_MYSQL_FAULT_PORT:-23096}"
MARIADB_FAULT_PORT="${TIDEMARK_MARIADB_FAULT_PORT:-23105}"

mysql_fault_up() { mysql_instance_up mysql-fault "$MYSQL_FAULT_PORT" 96; }
mysql_fault_down() { stop_server mysql-fault; }
mysql_fault_kill() { kill_server mysql-fault; }
mariadb_fault_up() { mariadb_instance_up mariadb-fault "$MARIADB_FAULT_PORT" 1014; }
mariadb_fault_down() { stop_server mariadb-fault; }
mariadb_fault_kill() { kill_server mariadb-fault; }

# As a crash would: SIGKILL, then wait until the process is gone (its datadir is then free for the next `up`).
kill_server() {
  local name=$1 pidfile="$RUN_DIR/$1.pid"
  if pid_alive "$pidfile"; then
    log "killing $name (kill -9)"
    kill -9 "$(cat "$pidfile")"
    wait_for "$name-kill" 30 bash -c "! kill -0 $(cat "$pidfile") 2>/dev/null" || die "$name did not die after kill -9"
  fi
  rm -f "$pidfile"
}

# ---------------------------------------------------------------- Kafka 3.9.1
# Kafka's jars from Maven through a pom that lists them, once: version pom-dir libs-dir log-file.
kafka_fetch() {
  local version=$1 pom=$2 libs=$3 mvnlog="$RUN_DIR/$4"
  if [ -f "$libs/kafka_2.13-$version.jar" ]; then return; fi
  command -v java >/dev/null || apt_install default-jre-headless
  command -v mvn >/dev/null || apt_install maven
  log "fetching Kafka $version jars into $libs (first time only)"
  rm -rf "$libs.partial"
  (cd "$pom" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs.partial") \
    >"$mvnlog" 2>&1 || die "fetching Kafka $version jars failed, see $mvnlog"
  mv "$libs.partial" "$libs"
}

kafka_install() { kafka_fetch 3.9.1 "$REPO_DIR/test/servers/kafka" "$KAFKA_LIBS" mvn.log; }

kafka_ready() { port_open "$KAFKA_PORT" && grep -q 'Kafka Server started' "$RUN_DIR/kafka/server.log"; }

kafka_up() {
  local dir="$RUN_DIR/kafka"
  if port_open "$KAFKA_PORT"; then return; fi
  stop_server kafka
  kafka_install
  mkdir -p "$dir"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
EOF
  cat >"$dir/log4j.properties" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$dir/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
  local java=(java -Xms512m -Xmx768m -Dlog4j.configuration="file:$dir/log4j.properties" -cp "$KAFKA_LIBS/*")
  if [ ! -f "$dir/data/meta.properties" ]; then
    log "formatting Kafka storage"
    "${java[@]}" kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_ID" -c "$dir/server.properties" \
      >"$dir/format.log" 2>&1 || die "kafka storage format failed, see $dir/format.log"
  fi
  log "starting Kafka on 127.0.0.1:$KAFKA_PORT"
  : >"$dir/server.log"
  setsid nohup "${java[@]}" kafka.Kafka "$dir/server.properties" >"$dir/stdout.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/kafka.pid"
  wait_for kafka 120 kafka_ready || die "Kafka did not start within 120 s; see $dir/server.log and $dir/stdout.log"
}

kafka_down() { stop_server kafka; }
kafka_kill() { kill_server kafka; }

# ---------------------------------------------------------------- Kafka 4.x
# The same single-node KRaft broker on the 4.x line, which is set up differently: a dynamic controller quorum
# (storage formatted with --standalone, the controller found through controller.quorum.bootstrap.servers) and
# log4j2 in place of log4j 1. Its own port, so both lines can run side by side.
kafka4_install() { kafka_fetch "$KAFKA4_VERSION" "$REPO_DIR/test/servers/kafka4" "$KAFKA4_LIBS" mvn-kafka4.log; }

kafka4_ready() { port_open "$KAFKA4_PORT" && grep -q 'Kafka Server started' "$RUN_DIR/kafka4/server.log"; }

kafka4_up() {
  local dir="$RUN_DIR/kafka4"
  if port_open "$KAFKA4_PORT"; then return; fi
  stop_server kafka4
  kafka4_install
  mkdir -p "$dir"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA4_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA4_PORT,CONTROLLER://127.0.0.1:$KAFKA4_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA4_PORT,CONTROLLER://127.0.0.1:$KAFKA4_CONTROLLER_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
EOF
  cat >"$dir/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
EOF
  local java=(java -Xms512m -Xmx768m -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$KAFKA4_LIBS/*")
  if [ ! -f "$dir/data/meta.properties" ]; then
    log "formatting Kafka $KAFKA4_VERSION storage"
    "${java[@]}" kafka.tools.StorageTool format --standalone -t "$KAFKA_CLUSTER_ID" -c "$dir/server.properties" \
      >"$dir/format.log" 2>&1 || die "Kafka $KAFKA4_VERSION storage format failed, see $dir/format.log"
  fi
  log "starting Kafka $KAFKA4_VERSION on 127.0.0.1:$KAFKA4_PORT"
  : >"$dir/server.log"
  setsid nohup "${java[@]}" kafka.Kafka "$dir/server.properties" >"$dir/stdout.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/kafka4.pid"
  wait_for kafka4 120 kafka4_ready || die "Kafka $KAFKA4_VERSION did not start within 120 s; see $dir/server.log and $dir/stdout.log"
}

kafka4_down() { stop_server kafka4; }
kafka4_kill() { kill_server kafka4; }

# ---------------------------------------------------------------- PostgreSQL
# The newest installed server's binaries (Debian keeps them per major version).
postgres_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

# PostgreSQL refuses to run as root. It runs in a user namespace of its own where it is the postgres user
# (whom Debian's package creates) while, outside, its files and process stay root's: so its data can live
# in root's cache directory, which the postgres user itself may not enter.
as_postgres() { unshare --user --map-user="$(id -u postgres)" --map-group="$(id -g postgres)" -- "$@"; }

postgres_ready() { "$1/pg_isready" -q -h 127.0.0.1 -p "$POSTGRES_PORT"; }

postgres_up() {
  local dir="$RUN_DIR/postgres" bin
  bin=$(postgres_bin)
  if [ -n "$bin" ] && postgres_ready "$bin"; then return; fi
  if [ -z "$bin" ]; then apt_install postgresql; bin=$(postgres_bin); fi
  [ -n "$bin" ] || die "no PostgreSQL server under /usr/lib/postgresql after installing Debian's postgresql"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    log "initializing PostgreSQL datadir"
    rm -rf "$dir"; mkdir -p "$dir"
    as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C --no-sync \
      >"$RUN_DIR/postgres-init.log" 2>&1 || die "initdb failed, see $RUN_DIR/postgres-init.log"
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 300
EOF
  fi
  # A server of ours that does not answer here (other port, hung) still holds the datadir.
  postgres_down
  log "starting PostgreSQL on 127.0.0.1:$POSTGRES_PORT"
  setsid unshare --user --map-user="$(id -u postgres)" --map-group="$(id -g postgres)" -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -o "-p $POSTGRES_PORT" -w -t 60 start \
    >"$RUN_DIR/postgres.out" 2>&1 </dev/null || die "PostgreSQL did not start; see $dir/postgres.log"
  wait_for postgres 30 postgres_ready "$bin" || die "PostgreSQL did not answer on port $POSTGRES_PORT; see $dir/postgres.log"
}

postgres_down() {
  local dir="$RUN_DIR/postgres" bin pid
  bin=$(postgres_bin)
  [ -f "$dir/data/postmaster.pid" ] || return 0
  pid=$(head -n 1 "$dir/data/postmaster.pid")
  if pid_alive "$dir/data/postmaster.pid" "$pid"; then
    log "stopping postgres"
    as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || kill -9 "$pid"
  else
    # Left by a machine that stopped; PostgreSQL would take a live process with that pid for itself and not start.
    rm -f "$dir/data/postmaster.pid"
  fi
}

# ---------------------------------------------------------------- commands
env_lines() {
  echo "TIDEMARK_TEST_MYSQL_URL=mysql://root@127.0.0.1:$MYSQL_PORT"
  echo "TIDEMARK_TEST_MARIADB_URL=mysql://root@127.0.0.1:$MARIADB_PORT"
  echo "TIDEMARK_TEST_MYSQL_SOURCE_URL=mysql://root@127.0.0.1:$MYSQL_SOURCE_PORT"
  echo "TIDEMARK_TEST_MYSQL_REPLICA_URL=mysql://root@127.0.0.1:$MYSQL_REPLICA_PORT"
  echo "TIDEMARK_TEST_MARIADB_SOURCE_URL=mysql://root@127.0.0.1:$MARIADB_SOURCE_PORT"
  echo "TIDEMARK_TEST_MARIADB_REPLICA_URL=mysql://root@127.0.0.1:$MARIADB_REPLICA_PORT"
  echo "TIDEMARK_TEST_MYSQL_FAULT_URL=mysql://root@127.0.0.1:$MYSQL_FAULT_PORT"
  echo "TIDEMARK_TEST_MARIADB_FAULT_URL=mysql://root@127.0.0.1:$MARIADB_FAULT_PORT"
  # The CAs that signed each server's certificate, for tests that verify it.
  echo "TIDEMARK_TEST_MYSQL_CA=$MYSQL_ROOT/var/lib/tidemark-mysql/ca.pem"
  echo "TIDEMARK_TEST_MARIADB_CA=$RUN_DIR/mariadb/tls/ca.pem"
  echo "TIDEMARK_TEST_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"
  echo "TIDEMARK_TEST_KAFKA4_BROKERS=127.0.0.1:$KAFKA4_PORT"
  echo "TIDEMARK_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$POSTGRES_PORT/postgres"
}

status() {
  local v
  v=$(sql_tcp "$MYSQL_PORT" "SELECT VERSION()" || echo "not running")
  echo "mysql    $v  mysql://root@127.0.0.1:$MYSQL_PORT"
  v=$(sql_tcp "$MARIADB_PORT" "SELECT VERSION()" || echo "not running")
  echo "mariadb  $v  mysql://root@127.0.0.1:$MARIADB_PORT"
  local name port
  for name in mysql-source:$MYSQL_SOURCE_PORT mysql-replica:$MYSQL_REPLICA_PORT mariadb-source:$MARIADB_SOURCE_PORT mariadb-replica:$MARIADB_REPLICA_PORT \
    mysql-fault:$MYSQL_FAULT_PORT mariadb-fault:$MARIADB_FAULT_PORT; do
    port=${name#*:}
    v=$(sql_tcp "$port" "SELECT VERSION()" || echo "not running")
    echo "${name%:*}  $v  mysql://root@127.0.0.1:$port"
  done
  if port_open "$KAFKA_PORT"; then v="3.9.1 (KRaft)"; else v="not running"; fi
  echo "kafka    $v  127.0.0.1:$KAFKA_PORT"
  if port_open "$KAFKA4_PORT"; then v="$KAFKA4_VERSION (KRaft)"; else v="not running"; fi
  echo "kafka4   $v  127.0.0.1:$KAFKA4_PORT"
  v=$(psql -h 127.0.0.1 -p "$POSTGRES_PORT" -U postgres -d postgres -Atc 'SHOW server_version' 2>/dev/null || echo "not running")
  echo "postgres $v  postgres://postgres@127.0.0.1:$POSTGRES_PORT/postgres"
}

# The end of a MySQL or MariaDB server's error log, for a test that found it gone.
server_errlog() {
  local name=$1 file
  case "$name" in
    mysql) file="$MYSQL_ROOT/var/log/tidemark-mysql.err" ;;
    mysql-*) file="$MYSQL_ROOT/var/log/tidemark-$name.err" ;;
    mariadb*) file="$RUN_DIR/$name/mariadb.err" ;;
    *) die "no error log for '$name'" ;;
  esac
  echo "== $file"
  tail -n 40 "$file" 2>&1 || true
}

main() {
  local cmd=${1:-status}; shift || true
  local which=("$@")
  [ ${#which[@]} -gt 0 ] || which=(mysql mariadb kafka postgres)
  mkdir -p "$RUN_DIR"
  case "$cmd" in
    up) for s in "${which[@]}"; do "${s//-/_}_up"; done; status >&2 ;;
    down) for s in "${which[@]}"; do "${s//-/_}_down"; done ;;
    kill) for s in "$@"; do "${s//-/_}_kill"; done ;;
    reset-replica) for s in "$@"; do "${s}_replica_reset"; done ;;
    errlog) for s in "$@"; do server_errlog "$s"; done ;;
    status) status ;;
    env) env_lines ;;
    *) die "unknown command '$cmd' (use up, down, kill, reset-replica, errlog, status or env)" ;;
  esac
}

main "$@"
