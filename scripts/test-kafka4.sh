#!/usr/bin/env bash
# Runs the Kafka integration tests against Apache Kafka 4.x (scripts/test-servers.sh up kafka4) in place of
# the default 3.9.1; the other servers are the usual ones.
#
#   npm run test:kafka4                          the Kafka test files (kafka*, dead-letters)
#   npm run test:kafka4 -- kafka-compression     arguments go to vitest run as file filters
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_DIR"
bash scripts/test-servers.sh up kafka4
brokers=$(bash scripts/test-servers.sh env | sed -n 's/^TIDEMARK_TEST_KAFKA4_BROKERS=//p')
[ -n "$brokers" ] || { echo "[test-kafka4] error: scripts/test-servers.sh env names no TIDEMARK_TEST_KAFKA4_BROKERS" >&2; exit 1; }
echo "[test-kafka4] Kafka 4.x at $brokers" >&2
export TIDEMARK_TEST_KAFKA_BROKERS="$brokers" TIDEMARK_TEST_KAFKA_LINE=4
if [ $# -eq 0 ]; then set -- kafka dead-letters; fi
exec npx vitest run --project integration "$@"
