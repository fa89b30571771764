#!/usr/bin/env bash
# Local test servers for tidemark: MySQL 9.7 (Debian sid, in a debootstrap chroot), MariaDB 10.11
# (Debian's mariadb-server) and Apache Kafka 3.9.1 (KRaft, jars from Maven), each on 127.0.0.1.
#
#   scripts/test-servers.sh up [mysql|mariadb|kafka ...]   install what is missing, start, wait until ready
#   scripts/test-servers.sh down [...]                     stop
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
MYSQL_ROOT="$CACHE_DIR/mysql-sid-root"
KAFKA_LIBS="$CACHE_DIR/kafka-3.9.1-libs"
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

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

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
mariadb_up() {
  local dir="$RUN_DIR/mariadb" sock="$RUN_DIR/mariadb/mariadb.sock"
  if sql_tcp "$MARIADB_PORT" "SELECT 1" >/dev/null; then return; fi
  stop_server mariadb
  command -v mariadbd >/dev/null && command -v mariadb-install-db >/dev/null || apt_install mariadb-server mariadb-client
  if [ ! -d "$dir/data/mysql" ]; then
    log "initializing MariaDB datadir"
    rm -rf "$dir"; mkdir -p "$dir"
    mariadb-install-db --no-defaults --user=root --datadir="$dir/data" --auth-root-authentication-method=normal \
      --skip-test-db >"$RUN_DIR/mariadb-init.log" 2>&1 || die "mariadb-install-db failed, see $RUN_DIR/mariadb-init.log"
  fi
  log "starting MariaDB on 127.0.0.1:$MARIADB_PORT"
  setsid nohup mariadbd --no-defaults --user=root --datadir="$dir/data" \
    --port="$MARIADB_PORT" --bind-address=127.0.0.1 --socket="$sock" --pid-file="$dir/mariadb.pid" \
    --log-error="$dir/mariadb.err" --log-bin="$dir/data/binlog" --server-id=1011 \
    --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL \
    --innodb-buffer-pool-size=256M --max-connections=500 \
    >"$RUN_DIR/mariadb.out" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/mariadb.pid"
  wait_for mariadb 60 sql_socket "$sock" "SELECT 1" || die "MariaDB did not start; see $dir/mariadb.err"
  sql_socket "$sock" "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
    GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
  wait_for mariadb 30 sql_tcp "$MARIADB_PORT" "SELECT 1" || die "MariaDB did not answer on port $MARIADB_PORT"
}

mariadb_down() { stop_server mariadb; }

# ---------------------------------------------------------------- Kafka 3.9.1
kafka_install() {
  if [ -f "$KAFKA_LIBS/kafka_2.13-3.9.1.jar" ]; then return; fi
  command -v java >/dev/null || apt_install default-jre-headless
  command -v mvn >/dev/null || apt_install maven
  log "fetching Kafka 3.9.1 jars into $KAFKA_LIBS (first time only)"
  rm -rf "$KAFKA_LIBS.partial"
  (cd "$REPO_DIR/test/servers/kafka" &&
    mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS.partial") \
    >"$RUN_DIR/mvn.log" 2>&1 || die "fetching Kafka jars failed, see $RUN_DIR/mvn.log"
  mv "$KAFKA_LIBS.partial" "$KAFKA_LIBS"
}

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

# ---------------------------------------------------------------- commands
env_lines() {
  echo "TIDEMARK_TEST_MYSQL_URL=mysql://root@127.0.0.1:$MYSQL_PORT"
  echo "TIDEMARK_TEST_MARIADB_URL=mysql://root@127.0.0.1:$MARIADB_PORT"
  echo "TIDEMARK_TEST_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"
}

status() {
  local v
  v=$(sql_tcp "$MYSQL_PORT" "SELECT VERSION()" || echo "not running")
  echo "mysql    $v  mysql://root@127.0.0.1:$MYSQL_PORT"
  v=$(sql_tcp "$MARIADB_PORT" "SELECT VERSION()" || echo "not running")
  echo "mariadb  $v  mysql://root@127.0.0.1:$MARIADB_PORT"
  if port_open "$KAFKA_PORT"; then v="3.9.1 (KRaft)"; else v="not running"; fi
  echo "kafka    $v  127.0.0.1:$KAFKA_PORT"
}

main() {
  local cmd=${1:-status}; shift || true
  local which=("$@")
  [ ${#which[@]} -gt 0 ] || which=(mysql mariadb kafka)
  mkdir -p "$RUN_DIR"
  case "$cmd" in
    up) for s in "${which[@]}"; do "${s}_up"; done; status >&2 ;;
    down) for s in "${which[@]}"; do "${s}_down"; done ;;
    status) status ;;
    env) env_lines ;;
    *) die "unknown command '$cmd' (use up, down, status or env)" ;;
  esac
}

main "$@"
