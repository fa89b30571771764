#!/usr/bin/env bash
# Runs the tests on another Node than the one on PATH, in a copy of the working tree whose node_modules
# is installed by that Node (better-sqlite3 is a native module, built for one Node ABI at a time).
#
#   TIDEMARK_TEST_NODE=22 npm run test:node                          unit and integration suites on the newest Node 22
#   TIDEMARK_TEST_NODE=24.11.0 npm run test:node -- test/unit        arguments go to vitest run
#   TIDEMARK_TEST_NODE=/opt/node-v24/bin/node npm run test:node      a Node binary as it is
#
# A version is fetched from the npm registry's node-linux-<arch> package (the official binaries with
# their headers) into $TIDEMARK_CACHE_DIR/node/v<version> (default ~/.cache/tidemark). The copy lives in
# $TIDEMARK_CACHE_DIR/node/tree-v<version>: its files are laid anew from the working tree on every run
# (tracked and untracked, not ignored), its node_modules only when package-lock.json changed.
set -euo pipefail

CACHE_DIR="${TIDEMARK_CACHE_DIR:-$HOME/.cache/tidemark}"
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { echo "[test-node] $*" >&2; }
die() { echo "[test-node] error: $*" >&2; exit 1; }

spec="${TIDEMARK_TEST_NODE:-}"
[ -n "$spec" ] || die "set TIDEMARK_TEST_NODE to a Node version (22, 24, 22.23.5) or to a node binary"

if [[ "$spec" =~ ^[0-9]+(\.[0-9]+){0,2}$ ]]; then
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64) arch=arm64 ;;
    *) die "no node-linux package for $(uname -m); give TIDEMARK_TEST_NODE a node binary instead" ;;
  esac
  # `npm view` lists every version in the range; the highest is taken.
  version=$(npm view "node-linux-$arch@$spec" version --json |
    node -e 'const v = [JSON.parse(require("fs").readFileSync(0, "utf8"))].flat();
      const key = (s) => s.split(".").map(Number);
      v.sort((a, b) => { const x = key(a), y = key(b); return x[0] - y[0] || x[1] - y[1] || x[2] - y[2]; });
      console.log(v.at(-1) ?? "")')
  [ -n "$version" ] || die "the registry has no node-linux-$arch@$spec"
  node_home="$CACHE_DIR/node/v$version"
  if [ ! -x "$node_home/bin/node" ]; then
    log "fetching node-linux-$arch@$version into $node_home"
    rm -rf "$node_home.partial"
    mkdir -p "$node_home.partial"
    tarball=$(cd "$node_home.partial" && npm pack "node-linux-$arch@$version" --silent)
    tar -xzf "$node_home.partial/$tarball" --strip-components=1 -C "$node_home.partial"
    rm "$node_home.partial/$tarball"
    mv "$node_home.partial" "$node_home"
  fi
  node="$node_home/bin/node"
else
  node="$(readlink -f "$spec")"
  [ -x "$node" ] || die "TIDEMARK_TEST_NODE=$spec is neither a version nor an executable"
  node_home="$(dirname "$(dirname "$node")")"
fi

version="$("$node" -p 'process.versions.node')"
tree="$CACHE_DIR/node/tree-v$version"
export PATH="$(dirname "$node"):$PATH"
# node-gyp compiles against these headers; without them it would use npm's configured nodedir (this Node's?).
if [ -f "$node_home/include/node/node.h" ]; then
  export npm_config_nodedir="$node_home"
else
  log "no headers beside $node; node-gyp uses npm's nodedir or downloads them"
fi

log "laying out $tree from $REPO_DIR"
mkdir -p "$tree"
find "$tree" -mindepth 1 -maxdepth 1 ! -name node_modules -exec rm -rf {} +
(cd "$REPO_DIR" && git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf -) | tar -xf - -C "$tree"

lock_id="node $version, $(sha256sum "$tree/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$tree/node_modules/.tidemark-installed" 2>/dev/null)" != "$lock_id" ]; then
  log "npm ci on Node $version (better-sqlite3 builds from source when no prebuilt binary can be fetched: a few minutes)"
  (cd "$tree" && npm ci --no-audit --no-fund >"$CACHE_DIR/node/npm-ci-v$version.log" 2>&1) ||
    die "npm ci failed on Node $version, see $CACHE_DIR/node/npm-ci-v$version.log"
  echo "$lock_id" >"$tree/node_modules/.tidemark-installed"
fi

log "vitest run${*:+ $*} on Node $version ($node)"
cd "$tree"
exec "$node" node_modules/vitest/vitest.mjs run "$@"
