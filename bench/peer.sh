#!/usr/bin/env bash
# Runs the original Node sample's benchmark harness on the sample and on this
# server, in alternating rounds, and prints the ratio for each phase:
#
#   bench/peer.sh
#
# The harness is ../shared/peers/node-sample/bench.sh (beside this checkout): the
# same issuer (issuer.py, a JWKS on loopback), the same tokens, the same
# correctness checks and the same wrk script (bench.lua) for both servers. Each
# phase (POST, GET, the 401 path) gets a fresh server process; ours gets a fresh,
# empty SQLite database each time (WAL, synchronous=FULL: every 201 is durable).
#
# This machine's speed drifts by a quarter or more from one minute to the next,
# so one run of each server compares two different minutes. A round runs both,
# back to back, and the order alternates (Node first in odd rounds, ours first in
# even ones), so drift favours neither; each round's ratio is its own pair, and
# the verdict is on the median round. ROUNDS=1 is the plain "once on each".
#
# Knobs (env): DURATION THREADS CONNS WARMUP GET_SEED are passed through to bench.sh
#   (defaults there: 10 2 64 2 10); ROUNDS=4 (pairs of runs, about 2 min each); PEER_BENCH=path
#   overrides the harness location; SKIP_BUILD=1 uses the existing
#   ${CARGO_TARGET_DIR:-target}/release binary; OUT=path also writes the tables there.
#
# Targets (issue 6): for POST and GET, at least 10x the sample's throughput and at
# most 1/3 of its p99.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEER=${PEER_BENCH:-$ROOT/../shared/peers/node-sample/bench.sh}
SKIP_BUILD=${SKIP_BUILD:-0}
OUT=${OUT:-}
ROUNDS=${ROUNDS:-4}
TARGET=${CARGO_TARGET_DIR:-target}
[[ $TARGET == /* ]] || TARGET=$ROOT/$TARGET
BIN=$TARGET/release/timesheets

die() { echo "peer.sh: $*" >&2; exit 1; }
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
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

for r in $(seq "$ROUNDS"); do
  if (( r % 2 )); then
    run "node-$r"; run "ours-$r" "$OURS"
  else
    run "ours-$r" "$OURS"; run "node-$r"
  fi
  rm -rf "${WORK:?}/db/"*  # each phase's database, done with
done

# Two decimals, so that a verdict is not on a ratio rounded up to 10.0.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
verdict() { awk -v t="$1" -v p="$2" 'BEGIN { print (t >= 10 && p >= 3) ? "met" : "NOT met" }'; }
# The middle value (the mean of the two middle ones for an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.6g", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
LABELS=("POST 201" "GET 200" "POST no-token 401")

# Per round and phase: throughput and p99 ratios, and ours' unexpected statuses.
declare -A T P BAD NR OR N99 O99 N50 O50 NKB OKB
for r in $(seq "$ROUNDS"); do
  for label in "${LABELS[@]}"; do
    k="$r/$label"
    read -r nr n50 n99 _ _ _ nkb <<<"$(phase "node-$r" "$label")"
    read -r or o50 o99 oreq obad oerr okb <<<"$(phase "ours-$r" "$label")"
    [[ $label == "POST no-token 401" ]] && obad=$(( oreq - obad ))  # here every answer should be a 401
    T[$k]=$(ratio "$or" "$nr") P[$k]=$(ratio "$n99" "$o99") BAD[$k]=$(( obad + oerr ))
    NR[$k]=$nr OR[$k]=$or N99[$k]=$n99 O99[$k]=$o99 N50[$k]=$n50 O50[$k]=$o50 NKB[$k]=$nkb OKB[$k]=$okb
  done
done
# One column of the summary: the median over rounds of one per-round figure.
across() { # array-name label
  local -n a=$1
  local r v=()
  for r in $(seq "$ROUNDS"); do v+=("${a[$r/$2]}"); done
  median "${v[@]}"
}
{
  echo "### Peer benchmark: the Node sample and ours through the same harness, $ROUNDS alternating round(s) ($(nproc) cores shared with wrk; $(grep -m1 '^server:' "$WORK/node-1.txt" | sed 's/.*; //'))"
  echo
  echo "Each round runs both servers back to back (Node first in odd rounds). Ratios are per round:"
  echo
  echo "| round | first | POST Node req/s | POST ours req/s | POST ours/Node | POST p99 Node/ours | GET Node req/s | GET ours req/s | GET ours/Node | GET p99 Node/ours | 401 ours/Node | ours unexpected statuses |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for r in $(seq "$ROUNDS"); do
    first=Node; (( r % 2 )) || first=ours
    bad=0; for label in "${LABELS[@]}"; do bad=$(( bad + BAD[$r/$label] )); done
    echo "| $r | $first | ${NR[$r/POST 201]} | ${OR[$r/POST 201]} | ${T[$r/POST 201]}x | ${P[$r/POST 201]}x | ${NR[$r/GET 200]} | ${OR[$r/GET 200]} | ${T[$r/GET 200]}x | ${P[$r/GET 200]}x | ${T[$r/POST no-token 401]}x | $bad |"
  done
  echo
  echo "Median over the rounds (each column on its own), and the verdict on the median ratios:"
  echo
  echo "| phase | Node req/s | ours req/s | throughput ours/Node | Node p99 ms | ours p99 ms | p99 Node/ours | Node p50 ms | ours p50 ms | Node RSS MiB | ours RSS MiB | rounds at target | target (>=10x, p99 <= 1/3) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  for label in "${LABELS[@]}"; do
    t=$(printf '%.2f' "$(across T "$label")") p=$(printf '%.2f' "$(across P "$label")")
    hits=0
    for r in $(seq "$ROUNDS"); do
      [[ $(verdict "${T[$r/$label]}" "${P[$r/$label]}") == met ]] && hits=$(( hits + 1 ))
    done
    case $label in
      "POST no-token 401") v="(no target)" hits="" ;;
      *) v=$(verdict "$t" "$p") hits="$hits of $ROUNDS" ;;
    esac
    echo "| $label | $(across NR "$label") | $(across OR "$label") | ${t}x | $(across N99 "$label") | $(across O99 "$label") | ${p}x | $(across N50 "$label") | $(across O50 "$label") | $(across NKB "$label") | $(across OKB "$label") | $hits | $v |"
  done
  echo
  codes=""
  for r in $(seq "$ROUNDS"); do codes+=" round $r: node ${RC[node-$r]}, ours ${RC[ours-$r]};"; done
  echo "Exit codes of bench.sh (1 = some phase saw unexpected statuses):${codes%;}."
} | tee "$WORK/peer.md"
[[ -z $OUT ]] || cp "$WORK/peer.md" "$OUT"
