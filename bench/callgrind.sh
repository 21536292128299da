#!/usr/bin/env bash
# Instructions per call under callgrind: the profile behind issue 6's
# targets, and the one figure this shared machine does not move (its req/s
# drift by a factor of four between sessions). Run by hand:
#
#   bench/callgrind.sh
#   SKIP_BUILD=1 CALLS="health health-token get" bench/callgrind.sh
#
# For each call it starts `serve --dev` under `valgrind --tool=callgrind`,
# sends WARM unmeasured calls, zeroes the counters (`callgrind_control -z`),
# sends MEASURED calls with h2load, dumps the counters (`callgrind_control
# -d`) and divides the server's instructions, all of its threads, by the
# calls. Every call must be answered HTTP 2xx, and the server must count
# every measured Get and create as OK (h2load cannot read gRPC statuses).
# It prints one markdown table and keeps each dump for `callgrind_annotate`
# (see docs/performance.md).
#
# Calls (CALLS, default all, in this order):
#   health          gRPC health Check: the ceiling, no auth and no database
#   health-token    the same call carrying the Get's authorization header
#                   (unchecked): what carrying the token costs
#   get             gRPC GetTimesheet of one seeded row, from the row cache
#   get-uncached    the same with the row cache off: every read from SQLite
#   rest-create     POST /timesheets over HTTP/1.1, as the peer harness sends it
#   rest-list       GET /timesheets of the caller's 10 rows over HTTP/1.1, as
#                   the peer harness sends it
#
# Knobs (env): MEASURED=4000 WARM=2000 CONNS=8 (REST_CONNS=64 for rest-create
# and rest-list, as in the peer harness), READ_ROWS=1000 OWN_ROWS=100, SKIP_BUILD=1,
# DUMPS=${CARGO_TARGET_DIR:-target}/callgrind (where the dumps are kept).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
CALLS=${CALLS:-health health-token get get-uncached rest-create rest-list}
MEASURED=${MEASURED:-4000}
WARM=${WARM:-2000}
CONNS=${CONNS:-8}
REST_CONNS=${REST_CONNS:-64}
READ_ROWS=${READ_ROWS:-1000}
OWN_ROWS=${OWN_ROWS:-100}
SKIP_BUILD=${SKIP_BUILD:-0}
TARGET=${CARGO_TARGET_DIR:-target}
[[ $TARGET == /* ]] || TARGET=$ROOT/$TARGET
BIN=$TARGET/release/timesheets
DUMPS=${DUMPS:-$TARGET/callgrind}
[[ $DUMPS == /* ]] || DUMPS=$ROOT/$DUMPS

USER_EMAIL=user0000@bench.example
GET_ID=$(printf '%032x' 7)
SERVICE=timesheets.v1.TimesheetService
CREATE_JSON='{"date":"2026-11-27","project":"Website","hours":7.5,"notes":"x"}'

WORK=$(mktemp -d "${TMPDIR:-/tmp}/timesheets-callgrind.XXXXXX")
LOGS=$WORK/logs
mkdir -p "$LOGS" "$DUMPS"
KEY=$WORK/dev-key.pem
# Startup under valgrind is some fifty times slower.
READY_SECONDS=${READY_SECONDS:-300}
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"

for tool in valgrind callgrind_control h2load curl sqlite3 python3 awk; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y valgrind nghttp2-client curl sqlite3 python3)"
done
for call in $CALLS; do
  case $call in health | health-token | get | get-uncached | rest-create | rest-list) ;; *) die "unknown call $call" ;; esac
done
if [[ $SKIP_BUILD != 1 ]]; then
  log "building (cargo build --release, target $TARGET)"
  (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release --quiet)
fi
[[ -x $BIN ]] || die "no binary at $BIN"

python3 "$BENCH/grpc_frame.py" health >"$WORK/health.bin"
python3 "$BENCH/grpc_frame.py" get "$GET_ID" >"$WORK/get.bin"
printf '%s' "$CREATE_JSON" >"$WORK/create.json"
make_template
seed_db "$WORK/read.db" "$READ_ROWS"

# h2load sends `count` calls and must see every one answered with HTTP 2xx;
# gRPC answers are checked by the server's own counters below.
load() { # count conns url body-file auth(yes|no) h1(yes|no) content-type
  local args=(-n "$1" -c "$2" -t 1 -m 1 -H "content-type: $7")
  [[ -n $4 ]] && args+=(-d "$4")
  [[ $5 == yes ]] && args+=(-H "authorization: Bearer $TOKEN")
  if [[ $6 == yes ]]; then args+=(--h1); else args+=(-H 'te: trailers'); fi
  local out
  out=$(h2load "${args[@]}" "$3" 2>&1) || die "h2load failed: $(tail -3 <<<"$out")"
  grep -q "^status codes: $1 2xx" <<<"$out" || die "not every call answered 2xx: $(grep -E '^(requests|status codes):' <<<"$out")"
}

declare -A IR
for call in $CALLS; do
  db=$WORK/$call.db flags=() method= code=OK auth=yes h1=no conns=$CONNS ctype=application/grpc
  case $call in
    health) auth=no ;&
    health-token) path=/grpc.health.v1.Health/Check body=$WORK/health.bin; fresh_db "$db" ;;
    get-uncached) flags=(--row-cache-bytes 0) ;&
    get) path=/$SERVICE/GetTimesheet body=$WORK/get.bin method=GetTimesheet; cp "$WORK/read.db" "$db" ;;
    rest-create)
      path=/timesheets body=$WORK/create.json method=CreateTimesheet h1=yes conns=$REST_CONNS
      ctype=application/json; fresh_db "$db" ;;
    rest-list)
      path=/timesheets body= method=ListTimesheets h1=yes conns=$REST_CONNS
      ctype=application/json; fresh_db "$db" ;;
  esac
  SERVER_WRAPPER=(valgrind --tool=callgrind --callgrind-out-file="$DUMPS/$call.%p")
  rm -f "$DUMPS/$call".*
  start_server "$call" "sqlite://$db" "${flags[@]}"
  url=http://$ADDR$path
  if [[ $call == rest-list ]]; then
    # The peer harness's GET phase: the caller's ten rows, made through the API.
    for _ in $(seq 10); do
      curl -sf -o /dev/null -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
        --data-binary "@$WORK/create.json" "$url" || die "$call: seeding a row failed"
    done
  fi
  log "$call: $WARM calls to warm up, then $MEASURED measured, on $conns connections ($url)"
  load 1 1 "$url" "$body" "$auth" "$h1" "$ctype"
  load "$WARM" "$conns" "$url" "$body" "$auth" "$h1" "$ctype"
  [[ -n $method ]] && read -r ok0 bad0 _ < <(call_counts "$method" "$code")
  callgrind_control -z "$SPID" >/dev/null 2>&1
  load "$MEASURED" "$conns" "$url" "$body" "$auth" "$h1" "$ctype"
  callgrind_control -d "$SPID" >/dev/null 2>&1
  if [[ -n $method ]]; then
    read -r ok1 bad1 _ < <(call_counts "$method" "$code")
    (( ok1 - ok0 == MEASURED && bad1 == bad0 )) \
      || die "$call: the server counted $((ok1 - ok0)) $method calls with $code and $((bad1 - bad0)) others, of $MEASURED"
  fi
  SERVER_WRAPPER=()
  stop_server
  # The dump taken by -d is the one numbered 1; the final one, at exit,
  # holds only the shutdown.
  dumps=("$DUMPS/$call".*.1)
  dump=${dumps[0]}
  [[ -e $dump ]] || die "$call: no dump in $DUMPS"
  total=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
  [[ -n $total ]] || die "$call: no instruction total in $dump"
  IR[$call]=$(awk -v t="$total" -v n="$MEASURED" 'BEGIN { printf "%.1f", t / n / 1000 }')
  log "$call: ${IR[$call]}k instructions a call ($dump)"
  rm -f "$db" "$db-wal" "$db-shm"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b / a }'; }
echo "### Instructions per call (callgrind; $MEASURED calls after $WARM, $CONNS connections, $REST_CONNS for the REST calls; checkout $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown))"
echo
echo "| call | thousand instructions a call |"
echo "|---|---:|"
for call in $CALLS; do echo "| $call | ${IR[$call]} |"; done
echo
if [[ -n ${IR[health]:-} && -n ${IR[get]:-} ]]; then
  echo "- health / GetTimesheet, in instructions: $(ratio "${IR[get]}" "${IR[health]}") (the req/s target is GetTimesheet >= 0.80 of health)"
  [[ -n ${IR[health-token]:-} ]] \
    && echo "- health carrying the token / GetTimesheet: $(ratio "${IR[get]}" "${IR[health-token]}") (what auth, the cache and the handler cost)"
fi
echo "- dumps kept in $DUMPS: \`callgrind_annotate --auto=no <dump>\` for a flat profile"
