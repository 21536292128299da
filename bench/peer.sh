#!/usr/bin/env bash
# Runs the original Node sample's benchmark harness twice in one go, once on the
# sample and once on this server, and prints the ratio for each phase:
#
#   bench/peer.sh
#
# The harness is ../shared/peers/node-sample/bench.sh (beside this checkout): the
# same issuer (issuer.py, a JWKS on loopback), the same tokens, the same
# correctness checks and the same wrk script (bench.lua) for both servers. Each
# phase (POST, GET, the 401 path) gets a fresh server process; ours gets a fresh,
# empty SQLite database each time (WAL, synchronous=FULL: every 201 is durable).
#
# Knobs (env): DURATION THREADS CONNS WARMUP GET_SEED are passed through to bench.sh
#   (defaults there: 10 2 64 2 10); PEER_BENCH=path overrides the harness location;
#   SKIP_BUILD=1 uses the existing ${CARGO_TARGET_DIR:-target}/release binary;
#   OUT=path also writes the comparison table there.
#
# Targets (issue 6): for POST and GET, at least 10x the sample's throughput and at
# most 1/3 of its p99.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEER=${PEER_BENCH:-$ROOT/../shared/peers/node-sample/bench.sh}
SKIP_BUILD=${SKIP_BUILD:-0}
OUT=${OUT:-}
TARGET=${CARGO_TARGET_DIR:-target}
[[ $TARGET == /* ]] || TARGET=$ROOT/$TARGET
BIN=$TARGET/release/timesheets

die() { echo "peer.sh: $*" >&2; exit 1; }
[[ -f $PEER ]] || die "no peer harness at $PEER (shared/ must sit beside the checkout)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/timesheets-peer.XXXXXX")
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # bench.sh stops its own servers, issuer and wrk (by PID) on exit; only our
  # databases and logs are left here.
  rm -rf "$WORK/db"
  if [[ $rc -ne 0 ]]; then echo "peer.sh: failed (rc=$rc); logs in $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$WORK/db"

if [[ $SKIP_BUILD != 1 ]]; then
  echo "peer.sh: building (cargo build --release, target $TARGET)" >&2
  (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release --quiet)
fi
[[ -x $BIN ]] || die "no binary at $BIN"

# bench.sh runs SERVER_CMD with bash, with PORT, HOST, ISSUER and AUDIENCE in its
# environment, once per phase: the $(mktemp) gives every phase an empty database.
OURS="$(printf '%q' "$BIN") serve --listen \$HOST:\$PORT --issuer \$ISSUER --audience \$AUDIENCE"
OURS+=" --database-url sqlite://\$(mktemp -d -p $(printf '%q' "$WORK/db"))/bench.db"

declare -A RC
run() { # name [SERVER_CMD]
  local name=$1
  echo "=== $name ===" >&2
  set +e
  if [[ -n ${2:-} ]]; then
    SERVER_CMD=$2 bash "$PEER" 2>&1 | tee "$WORK/$name.txt" >&2
  else
    bash "$PEER" 2>&1 | tee "$WORK/$name.txt" >&2
  fi
  RC[$name]=${PIPESTATUS[0]}
  set -e
  # bench.sh exits 1 with a complete table when a phase saw unexpected statuses
  # (reported below); anything else without a table is a failure.
  grep -q '^POST 201 ' "$WORK/$name.txt" || die "$name: bench.sh produced no results (rc=${RC[$name]})"
}
# "rps p50 p99 requests non2xx sockerr VmHWM_MiB" of one phase of bench.sh's table.
phase() { # name label-prefix
  awk -v p="$2" 'index($0, p) == 1 { n = NF; print $(n-6), $(n-5), $(n-4), $(n-3), $(n-2), $(n-1), $n; exit }' \
    "$WORK/$1.txt"
}

run node
run ours "$OURS"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "n/a" }'; }
verdict() { awk -v t="$1" -v p="$2" 'BEGIN { print (t >= 10 && p >= 3) ? "met" : "NOT met" }'; }
{
  echo "### Peer benchmark: the Node sample and ours through the same harness ($(nproc) cores shared with wrk; $(grep -m1 '^server:' "$WORK/node.txt" | sed 's/.*; //'))"
  echo
  echo "| phase | Node req/s | ours req/s | throughput ours/Node | Node p99 ms | ours p99 ms | p99 Node/ours | Node p50 ms | ours p50 ms | Node RSS MiB | ours RSS MiB | ours unexpected statuses | target (>=10x, p99 <= 1/3) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  for label in "POST 201" "GET 200" "POST no-token 401"; do
    read -r nr n50 n99 _ nbad _ nkb <<<"$(phase node "$label")"
    read -r or o50 o99 oreq obad oerr okb <<<"$(phase ours "$label")"
    t=$(ratio "$or" "$nr") p=$(ratio "$n99" "$o99")
    case $label in
      "POST no-token 401") v="(no target)"; obad=$(( oreq - obad )) ;;  # here every answer should be a 401
      *) v=$(verdict "$t" "$p") ;;
    esac
    echo "| $label | $nr | $or | ${t}x | $n99 | $o99 | ${p}x | $n50 | $o50 | $nkb | $okb | $((obad + oerr)) | $v |"
  done
  echo
  echo "Exit codes of bench.sh: node ${RC[node]}, ours ${RC[ours]} (1 = some phase saw unexpected statuses)."
} | tee "$WORK/peer.md"
[[ -z $OUT ]] || cp "$WORK/peer.md" "$OUT"
