#!/usr/bin/env bash
# The timesheets benchmark suite (issue 6). Run by hand, never as a timed test:
#
#   bench/run.sh
#
# It builds the release binary, then for each row starts a fresh server on an
# ephemeral loopback port (`serve --dev`: the embedded issuer publishes the JWKS
# at http://<listen>/ and `timesheets token` mints tokens with the same key),
# drives it with wrk (HTTP/1.1) or h2load (gRPC over h2c, a pre-encoded request
# frame), and prints one markdown table, the target ratios, and a second table
# showing that GetTimesheet and ListTimesheets cost does not grow with the data.
#
# Knobs (env):
#   DURATION=10 CONNS=64 THREADS=2 WARMUP=2   per row: measured seconds, connections,
#                                            load-generator threads, unreported warm-up seconds
#   STREAMS=1                                h2load concurrent streams per connection
#   ROWS="1000 100000 1000000"               table sizes of the growth table ("" skips it)
#   SCALE_ROUNDS=3 SCALE_DURATION=5 SCALE_CONNS=$CONNS
#                                            the growth table: one server per size, all up at
#                                            once, measured in SCALE_ROUNDS alternating rounds
#                                            of SCALE_DURATION seconds per size and call
#   OWN_ROWS=100                             rows of the measured user (a full page of 50 at every size)
#   READ_ROWS=1000                           table size behind the read rows of the main table
#   PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/test
#                                            where row 4 creates (and drops) its own database
#   SKIP_BUILD=1                             use the existing ${CARGO_TARGET_DIR:-target}/release binary
#   ONLY="1 2 3"                             run only these rows of the main table ("" = all)
#   PAIRS=5 PAIR_SECONDS=3                   the Get/health ratio again, as the median of PAIRS
#                                            back-to-back runs (health, health with the token,
#                                            Get) on one server, and Get on a second server
#                                            with the row cache off, with each call's CPU
#                                            split into the server's and h2load's
#                                            (0 skips it; needs rows 1 and 2 selected)
#   OUT=path                                 also write the tables there
#   KEEP_WORK=1                              keep the work folder (logs, databases) after a success
#   PROFILE=1                                record the server with `perf record -g` during each
#                                            measured run; the flat profile goes to logs/rowN.profile.txt
#                                            (implies KEEP_WORK=1; needs linux-perf)
#   PROFILE_CALL_GRAPH="--call-graph dwarf,8192"
#                                            perf's call-graph option (default -g, frame pointers:
#                                            cheap, but std and most crates keep none, so stacks
#                                            break; dwarf unwinds them, with big files and slow reports)
#
# Each row gets its own server process, so VmHWM is that row's peak RSS, and its
# own database: an empty SQLite file for write rows, a seeded copy for read rows,
# a new PostgreSQL database for row 4. All traffic stays on 127.0.0.1, every load
# run is bounded by its duration, and everything started here is stopped by PID
# on exit, including on error or signal.
#
# h2load counts a gRPC error as a success (HTTP 200), so errors are taken from the
# server's own `timesheets_requests_total{method,code}` counters, read from
# GET /metrics before and after each measured run; every row also makes one
# checked call before its load starts.
set -euo pipefail
# Decimal points in `times`, awk and the tools' output, whatever the caller's locale.
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-2}
STREAMS=${STREAMS:-1}
ROWS=${ROWS-1000 100000 1000000}
SCALE_ROUNDS=${SCALE_ROUNDS:-3}
SCALE_DURATION=${SCALE_DURATION:-5}
SCALE_CONNS=${SCALE_CONNS:-$CONNS}
OWN_ROWS=${OWN_ROWS:-100}
READ_ROWS=${READ_ROWS:-1000}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/test}
export PGOPTIONS=${PGOPTIONS:---client-min-messages=warning}   # no NOTICE for DROP ... IF EXISTS
SKIP_BUILD=${SKIP_BUILD:-0}
ONLY=${ONLY:-}
PAIRS=${PAIRS:-5}
PAIR_SECONDS=${PAIR_SECONDS:-3}
OUT=${OUT:-}
KEEP_WORK=${KEEP_WORK:-0}
PROFILE=${PROFILE:-0}
[[ $PROFILE == 1 ]] && KEEP_WORK=1
TARGET=${CARGO_TARGET_DIR:-target}
[[ $TARGET == /* ]] || TARGET=$ROOT/$TARGET
BIN=$TARGET/release/timesheets

USER_EMAIL=user0000@bench.example   # the measured caller; seeded rows use the same identity
GET_ID=$(printf '%032x' 7)         # one of the measured caller's seeded rows
SERVICE=timesheets.v1.TimesheetService
CREATE_JSON='{"date":"2026-11-27","project":"Website","hours":7.5,"notes":"x"}'

WORK=$(mktemp -d "${TMPDIR:-/tmp}/timesheets-bench.XXXXXX")
LOGS=$WORK/logs
mkdir -p "$LOGS"
KEY=$WORK/dev-key.pem
PG_DB=   # row 4's database while it exists
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"

# ---------- clean-up (lib.sh's exit trap calls this) ----------
cleanup_extra() {
  if [[ -n $PG_DB ]]; then
    psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  # Seeded databases run to gigabytes: never kept, whatever the outcome.
  find "$WORK" -maxdepth 1 -name '*.db*' -delete 2>/dev/null || true
}

# ---------- prerequisites ----------
for tool in wrk h2load curl sqlite3 python3 awk; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y wrk nghttp2-client curl sqlite3 python3)"
done
if [[ $PROFILE == 1 ]]; then
  command -v perf >/dev/null || die "PROFILE=1 needs perf (apt-get install -y linux-perf)"
fi
if [[ $SKIP_BUILD != 1 ]]; then
  log "building (cargo build --release, target $TARGET)"
  (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release --quiet)
fi
[[ -x $BIN ]] || die "no binary at $BIN"
CLK_TCK=$(getconf CLK_TCK)

# ---------- request bodies ----------
python3 "$BENCH/grpc_frame.py" health >"$WORK/health.bin"
python3 "$BENCH/grpc_frame.py" get "$GET_ID" >"$WORK/get.bin"
python3 "$BENCH/grpc_frame.py" list 50 >"$WORK/list.bin"
python3 "$BENCH/grpc_frame.py" create >"$WORK/create.bin"
printf '%s' "$CREATE_JSON" >"$WORK/create.json"

# ---------- databases ----------
pg_available() { command -v psql >/dev/null && psql -q "$PG_ADMIN_URL" -c 'SELECT 1' >/dev/null 2>&1; }

# ---------- load ----------
# Sets L_REQS L_RPS L_P50 L_P99 L_TERR (transport errors) L_NON2XX.
server_cpu() { awk '{ print $14, $15 }' "/proc/$SPID/stat" 2>/dev/null || echo "0 0"; }
load_cpu() { awk 'NR == 2 { split($0, f, /[ ms]+/); print f[1] * 60 + f[2], f[3] * 60 + f[4] }'; } # `times`'s output
run_h2load() { # seconds outfile url frame auth(yes|no) [log-file]
  local args=(-c "$CONNS" -t "$THREADS" -m "$STREAMS" -D "$1" -d "$4"
    -H 'content-type: application/grpc' -H 'te: trailers')
  [[ $5 == yes ]] && args+=(-H "authorization: Bearer $TOKEN")
  [[ -n ${6:-} ]] && args+=("--log-file=$6")
  # CPU marks around h2load alone (`times` counts the children waited for).
  L_SERVER_CPU0=$(server_cpu)
  times >"$WORK/times"
  h2load "${args[@]}" "$3" >"$2" 2>&1 & local lpid=$!
  PIDS+=("$lpid")
  wait "$lpid" || { forget_pid "$lpid"; die "h2load failed: $(tail -3 "$2")"; }
  times >"$WORK/times-after"
  L_SERVER_CPU1=$(server_cpu)
  forget_pid "$lpid"
  [[ -n ${6:-} ]] || return 0
  L_RPS=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$2")
  L_REQS=$(sed -n 's/^requests: .* \([0-9]*\) done.*/\1/p' "$2")
  L_TERR=$(sed -n 's/^requests: .* \([0-9]*\) failed, \([0-9]*\) errored, \([0-9]*\) timeout.*/\1 \2 \3/p' "$2" \
    | awk '{print $1 + $2 + $3}')
  L_NON2XX=0
  read -r L_P50 L_P99 < <(sort -n -k3,3 "$6" | awk '{ v[NR] = $3 } END {
    if (NR == 0) { print "nan nan"; exit }
    i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
    i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
    printf "%.3f %.3f\n", v[i50] / 1000, v[i99] / 1000 }')
  # Reaped now, so its CPU is not counted in the next call's `times`.
  wait $! 2>/dev/null || true
  [[ -n $L_RPS && -n $L_REQS ]] || die "cannot parse $2"
}
run_wrk() { # seconds outfile url http-method body-file content-type auth(yes|no) grpc-web(0|1)
  local tok=
  [[ $7 == yes ]] && tok=$TOKEN
  METHOD=$4 BODY_FILE=$5 CONTENT_TYPE=$6 TOKEN=$tok GRPC_WEB=$8 \
    wrk -t"$THREADS" -c"$CONNS" -d"$1"s --latency -s "$BENCH/http.lua" "$3" >"$2" 2>&1 & local lpid=$!
  PIDS+=("$lpid")
  wait "$lpid" || { forget_pid "$lpid"; die "wrk failed: $(tail -3 "$2")"; }
  forget_pid "$lpid"
  local line
  line=$(grep '^RESULT ' "$2") || die "no RESULT line in $2"
  field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
  L_RPS=$(field rps) L_P50=$(field p50_ms) L_P99=$(field p99_ms) L_REQS=$(field requests)
  L_NON2XX=$(field non2xx) L_TERR=$(field sockerr)
}

# One checked call before the load: the row must measure what its label says.
check_call() { # tool url body-file content-type auth expected(gRPC code number | HTTP status) [http-method]
  local tool=$1 url=$2 body=$3 ctype=$4 auth=$5 want=$6 method=${7:-POST} got
  local hdr=(-H "content-type: $ctype")
  [[ $auth == yes ]] && hdr+=(-H "authorization: Bearer $TOKEN")
  case $tool in
    h2load)
      # A server may answer (trailers-only) before reading the body and reset
      # the stream with NO_ERROR, which curl reports as an error: only the
      # status counts. curl 7.88 sometimes drops such an answer altogether
      # (exit 92, no headers), so an empty answer is asked again.
      local attempt
      for attempt in 1 2 3; do
        got=$({ curl -s --http2-prior-knowledge -D - -o /dev/null "${hdr[@]}" -H 'te: trailers' \
          --data-binary "@$body" "$url" || true; } | tr -d '\r' | sed -n 's/^grpc-status: *//Ip' | tail -1)
        [[ -n $got ]] && break
      done ;;
    grpcweb)
      got=$({ curl -s -D - "${hdr[@]}" -H 'x-grpc-web: 1' --data-binary "@$body" "$url" || true; } \
        | tr -d '\r' | grep -ao 'grpc-status: *[0-9]*' | tail -1 | sed 's/.*: *//') ;;
    wrk)
      if [[ $method == GET ]]; then
        got=$(curl -s -o /dev/null -w '%{http_code}' "${hdr[@]}" "$url" || true)
      else
        got=$(curl -s -o /dev/null -w '%{http_code}' "${hdr[@]}" --data-binary "@$body" "$url" || true)
      fi ;;
  esac
  [[ $got == "$want" ]] || die "check before load: $url answered ${got:-nothing}, expected $want"
}

# ---------- the main table ----------
declare -A RES
PEAK_KB=0
# row N label db(empty|seeded|uncached|postgres) tool(h2load|wrk|grpcweb) path body content-type auth
#     (uncached: the seeded database, served with the row cache off)
#     metric-method expected-code(name) expected-check(gRPC number | HTTP status) [http-method]
row() {
  local n=$1 label=$2 db=$3 tool=$4 path=$5 body=$6 ctype=$7 auth=$8 method=$9 code=${10}
  local check=${11} http_method=${12:-POST} url dbpath before after c0 c1 errors bad=0 good=0
  if [[ -n $ONLY && " $ONLY " != *" $n "* ]]; then return 0; fi
  case $db in
    empty) dbpath=$WORK/row$n.db; fresh_db "$dbpath"; start_server "row$n" "sqlite://$dbpath" ;;
    seeded) dbpath=$WORK/row$n.db; cp "$WORK/read.db" "$dbpath"; start_server "row$n" "sqlite://$dbpath" ;;
    uncached)
      dbpath=$WORK/row$n.db; cp "$WORK/read.db" "$dbpath"
      start_server "row$n" "sqlite://$dbpath" --row-cache-bytes 0 ;;
    postgres)
      if ! pg_available; then
        log "row $n skipped: no PostgreSQL at $PG_ADMIN_URL"
        RES[$n]="| $n | $label | skipped: no PostgreSQL at ${PG_ADMIN_URL%%\?*} | | | | | |"
        return 0
      fi
      PG_DB=timesheets_bench_$$
      psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $PG_DB" -c "CREATE DATABASE $PG_DB" >/dev/null
      start_server "row$n" "${PG_ADMIN_URL%/*}/$PG_DB" ;;
  esac
  url="http://$ADDR$path"
  log "row $n: $label ($url)"
  check_call "$tool" "$url" "$body" "$ctype" "$auth" "$check" "$http_method"
  if (( WARMUP > 0 )); then
    case $tool in
      h2load) run_h2load "$WARMUP" "$LOGS/row$n-warmup.txt" "$url" "$body" "$auth" ;;
      wrk) run_wrk "$WARMUP" "$LOGS/row$n-warmup.txt" "$url" "$http_method" "$body" "$ctype" "$auth" 0 ;;
      grpcweb) run_wrk "$WARMUP" "$LOGS/row$n-warmup.txt" "$url" POST "$body" "$ctype" "$auth" 1 ;;
    esac
  fi
  [[ -n $method ]] && before=$(call_counts "$method" "$code")
  c0=$(cpu_ticks)
  local perf_pid=
  if [[ $PROFILE == 1 ]]; then
    # Software clock sampling works where hardware counters are not exposed.
    perf record -q -e cpu-clock -F 999 ${PROFILE_CALL_GRAPH:--g} -p "$SPID" -o "$LOGS/row$n.perf.data" -- sleep "$DURATION" \
      >/dev/null 2>&1 & perf_pid=$!
    PIDS+=("$perf_pid")
  fi
  case $tool in
    h2load) run_h2load "$DURATION" "$LOGS/row$n.txt" "$url" "$body" "$auth" "$WORK/row$n.h2log" ;;
    wrk) run_wrk "$DURATION" "$LOGS/row$n.txt" "$url" "$http_method" "$body" "$ctype" "$auth" 0 ;;
    grpcweb) run_wrk "$DURATION" "$LOGS/row$n.txt" "$url" POST "$body" "$ctype" "$auth" 1 ;;
  esac
  c1=$(cpu_ticks)
  if [[ -n $perf_pid ]]; then
    wait "$perf_pid" || log "perf record failed for row $n"
    forget_pid "$perf_pid"
    perf report -i "$LOGS/row$n.perf.data" --no-children --stdio --sort dso,symbol \
      --percent-limit 0.5 -g none >"$LOGS/row$n.profile.txt" 2>/dev/null || true
    perf report -i "$LOGS/row$n.perf.data" --children --stdio --sort symbol \
      --percent-limit 2 -g none >"$LOGS/row$n.profile-inclusive.txt" 2>/dev/null || true
  fi
  if [[ -n $method ]]; then
    after=$(call_counts "$method" "$code")
    read -r good bad cancelled < <(awk -v b="$before" -v a="$after" 'BEGIN { split(b, x, " "); split(a, y, " ");
      print y[1] - x[1], y[2] - x[2], y[3] - x[3] }')
    echo "server counted $good $method calls with $code, $bad with other codes, $cancelled cancelled by the client" >>"$LOGS/row$n.txt"
    (( cancelled > 0 )) && log "row $n: $cancelled $method calls cancelled by the load generator as it stopped (not errors)"
    if (( bad > 0 )); then
      # Which codes (cumulative over the server's life, warm-up included).
      log "row $n: $bad $method calls ended with another code than $code: $(curl -s "http://$ADDR/metrics" \
        | awk -v m="method=\"$method\"" -v c="code=\"$code\"" \
          '/^timesheets_requests_total\{/ && index($0, m) && !index($0, c) && !index($0, "code=\"CANCELLED\"") { printf "%s ", $0 }')"
    fi
  fi
  rm -f "$WORK/row$n.h2log"
  stop_server
  [[ $db == postgres ]] && { psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null; PG_DB=; }
  rm -f "$WORK/row$n.db" "$WORK/row$n.db-wal" "$WORK/row$n.db-shm"
  # Transport errors, plus calls that did not end with the expected code (a
  # REST failure is both a non-2xx and a non-OK call: counted once).
  errors=$(( L_TERR + (bad > L_NON2XX ? bad : L_NON2XX) ))
  (( HWM_KB > PEAK_KB )) && PEAK_KB=$HWM_KB
  RES[$n]=$(awk -v n="$n" -v l="$label" -v rps="$L_RPS" -v p50="$L_P50" -v p99="$L_P99" -v e="$errors" \
    -v req="$L_REQS" -v t="$((c1 - c0))" -v hz="$CLK_TCK" -v kb="$HWM_KB" 'BEGIN {
      cpu = req > 0 ? (t / hz) * 10000 / req : 0
      printf "| %s | %s | %.0f | %.2f | %.2f | %d | %.2f | %.1f |", n, l, rps, p50, p99, e, cpu, kb / 1024 }')
  RPS[$n]=$L_RPS
  log "${RES[$n]}"
}
declare -A RPS

echo "run.sh: $(nproc) cores, load avg $(cut -d' ' -f1-3 /proc/loadavg); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); $(h2load --version | head -1)" >&2
make_template
if [[ -z $ONLY || " $ONLY " == *" 2 "* || " $ONLY " == *" 5 "* || " $ONLY " == *" 7 "* || " $ONLY " == *" 10 "* ]]; then
  log "seeding $READ_ROWS rows for the read rows"
  seed_db "$WORK/read.db" "$READ_ROWS"
fi

G=application/grpc
row 1 "gRPC health Check (ceiling: no auth, no database)" empty h2load /grpc.health.v1.Health/Check \
  "$WORK/health.bin" $G no "" "" 0
row 2 "gRPC GetTimesheet" seeded h2load "/$SERVICE/GetTimesheet" "$WORK/get.bin" $G yes GetTimesheet OK 0
row 3 "gRPC CreateTimesheet, SQLite" empty h2load "/$SERVICE/CreateTimesheet" "$WORK/create.bin" $G yes \
  CreateTimesheet OK 0
row 4 "gRPC CreateTimesheet, PostgreSQL" postgres h2load "/$SERVICE/CreateTimesheet" "$WORK/create.bin" $G yes \
  CreateTimesheet OK 0
row 5 "gRPC ListTimesheets, page of 50" seeded h2load "/$SERVICE/ListTimesheets" "$WORK/list.bin" $G yes \
  ListTimesheets OK 0
row 6 "REST POST /v1/timesheets" empty wrk /v1/timesheets "$WORK/create.json" application/json yes \
  CreateTimesheet OK 201
row 7 "REST GET /timesheets?page_size=50" seeded wrk "/timesheets?page_size=50" "" "" yes ListTimesheets OK \
  200 GET
row 8 "gRPC-Web CreateTimesheet (HTTP/1.1)" empty grpcweb "/$SERVICE/CreateTimesheet" "$WORK/create.bin" \
  application/grpc-web+proto yes CreateTimesheet OK 0
row 9 "gRPC CreateTimesheet without a token (rejected)" empty h2load "/$SERVICE/CreateTimesheet" \
  "$WORK/create.bin" $G no CreateTimesheet UNAUTHENTICATED 16
# Row 2 asks for one row over and over, which after the first call the row
# cache answers; this row is the same call with every read going to SQLite.
row 10 "gRPC GetTimesheet, row cache off (every read from SQLite)" uncached h2load "/$SERVICE/GetTimesheet" \
  "$WORK/get.bin" $G yes GetTimesheet OK 0

# ---------- the Get/health ratio, paired ----------
# Rows 1 and 2 run a minute apart on separate servers; on a shared machine
# whose speed drifts between minutes, their ratio is one draw from a wide
# spread. Here one server answers both calls, in rotating order, a few
# seconds apart, and the median of the pairs' ratios is reported.
# Each pair also runs the health check carrying GetTimesheet's authorization
# header (unchecked: health is outside the auth layer). That isolates what
# carrying the token costs: nghttp2 never indexes `authorization`, so h2load
# Huffman-encodes the whole token on every call and h2 decodes it, on the
# same cores. GetTimesheet against that call is what auth and storage cost.
# And each pair runs GetTimesheet on a second server with the row cache off,
# where every call reads SQLite, against the same health check.
PAIR_RATIOS=()
TOKEN_RATIOS=()
UNCACHED_RATIOS=()
# Where each call's CPU goes, per call: the server's user and kernel time
# (/proc/<pid>/stat) and h2load's (bash's `times`, which counts waited-for
# children), for the three calls on the one server. Unlike req/s, these do
# not count the minutes the machine lends its cores elsewhere.
declare -A PAIR_CPU=()
# The last run_h2load's CPU per call, added to PAIR_CPU[call] as
# "server-user,server-kernel,h2load-user,h2load-kernel,total" in µs.
note_cpu() { # call
  (( L_REQS > 0 )) || return 0
  PAIR_CPU[$1]+=$(awk -v a="$L_SERVER_CPU0" -v b="$L_SERVER_CPU1" -v c="$(load_cpu <"$WORK/times")" \
    -v d="$(load_cpu <"$WORK/times-after")" -v n="$L_REQS" -v hz="$CLK_TCK" 'BEGIN {
    split(a, sa, " "); split(b, sb, " "); split(c, la, " "); split(d, lb, " ")
    su = (sb[1] - sa[1]) / hz * 1e6 / n; ss = (sb[2] - sa[2]) / hz * 1e6 / n
    lu = (lb[1] - la[1]) * 1e6 / n; ls = (lb[2] - la[2]) * 1e6 / n
    printf "%.1f,%.1f,%.1f,%.1f,%.1f ", su, ss, lu, ls, su + ss + lu + ls }')
}
if (( PAIRS > 0 )) && [[ -n ${RPS[1]:-} && -n ${RPS[2]:-} ]]; then
  cp "$WORK/read.db" "$WORK/pairs-uncached.db"
  start_server pairs-uncached "sqlite://$WORK/pairs-uncached.db" --row-cache-bytes 0
  uncached_url="http://$ADDR/$SERVICE/GetTimesheet" uncached_pid=$SPID uncached_token=$TOKEN
  check_call h2load "$uncached_url" "$WORK/get.bin" $G yes 0
  cp "$WORK/read.db" "$WORK/pairs.db"
  start_server pairs "sqlite://$WORK/pairs.db"
  health_url="http://$ADDR/grpc.health.v1.Health/Check"
  get_url="http://$ADDR/$SERVICE/GetTimesheet"
  check_call h2load "$get_url" "$WORK/get.bin" $G yes 0
  if (( WARMUP > 0 )); then
    run_h2load "$WARMUP" "$LOGS/pairs-warmup-health.txt" "$health_url" "$WORK/health.bin" no
    run_h2load "$WARMUP" "$LOGS/pairs-warmup-get.txt" "$get_url" "$WORK/get.bin" yes
    TOKEN=$uncached_token run_h2load "$WARMUP" "$LOGS/pairs-warmup-uncached.txt" "$uncached_url" "$WORK/get.bin" yes
  fi
  for ((i = 1; i <= PAIRS; i++)); do
    case $((i % 4)) in
      1) order=(health token get uncached) ;;
      2) order=(get uncached health token) ;;
      3) order=(token get uncached health) ;;
      *) order=(uncached health token get) ;;
    esac
    for what in "${order[@]}"; do
      if [[ $what == health ]]; then
        run_h2load "$PAIR_SECONDS" "$LOGS/pair$i-health.txt" "$health_url" "$WORK/health.bin" no "$WORK/pair.h2log"
        pair_health=$L_RPS
      elif [[ $what == token ]]; then
        run_h2load "$PAIR_SECONDS" "$LOGS/pair$i-health-token.txt" "$health_url" "$WORK/health.bin" yes "$WORK/pair.h2log"
        pair_token=$L_RPS
      elif [[ $what == uncached ]]; then
        TOKEN=$uncached_token run_h2load "$PAIR_SECONDS" "$LOGS/pair$i-get-uncached.txt" "$uncached_url" \
          "$WORK/get.bin" yes "$WORK/pair.h2log"
        pair_uncached=$L_RPS
      else
        run_h2load "$PAIR_SECONDS" "$LOGS/pair$i-get.txt" "$get_url" "$WORK/get.bin" yes "$WORK/pair.h2log"
        pair_get=$L_RPS
      fi
      [[ $what == uncached ]] || note_cpu "$what"
      rm -f "$WORK/pair.h2log"
    done
    PAIR_RATIOS+=("$(awk -v a="$pair_get" -v b="$pair_health" 'BEGIN { printf "%.2f", a / b }')")
    TOKEN_RATIOS+=("$(awk -v a="$pair_get" -v b="$pair_token" 'BEGIN { printf "%.2f", a / b }')")
    UNCACHED_RATIOS+=("$(awk -v a="$pair_uncached" -v b="$pair_health" 'BEGIN { printf "%.2f", a / b }')")
    log "pair $i: health $pair_health req/s, health with the token $pair_token req/s, GetTimesheet $pair_get req/s," \
      "with the row cache off $pair_uncached req/s; ratios ${PAIR_RATIOS[-1]}, ${TOKEN_RATIOS[-1]} and ${UNCACHED_RATIOS[-1]}"
  done
  stop_server
  stop_pid "$uncached_pid"
  rm -f "$WORK"/pairs.db* "$WORK"/pairs-uncached.db*
fi

# ---------- the growth table ----------
# Every size gets its own seeded database and server, all running at once,
# and the sizes are measured in alternating rounds (ascending, then
# descending): this machine's speed drifts from one minute to the next, so
# sizes measured in different minutes compare the minutes, not the sizes.
# Each growth ratio is taken within a round, and the table reports medians.
declare -A SCALE SCALE_ADDR SCALE_PID SCALE_TOKEN
SIZES=()
GROWTH_BAD=0
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
if [[ -n ${ROWS// /} ]]; then
  (( SCALE_ROUNDS >= 1 )) || die "SCALE_ROUNDS must be at least 1"
  [[ $(tr ' ' '\n' <<<"$ROWS" | grep . | sort | uniq -d) == "" ]] || die "ROWS lists a size twice: $ROWS"
  saved_conns=$CONNS
  CONNS=$SCALE_CONNS
  for size in $ROWS; do
    log "growth: seeding $size rows"
    seed_db "$WORK/scale-$size.db" "$size"
    # The row cache off: the table measures the index, not the cache.
    start_server "scale-$size" "sqlite://$WORK/scale-$size.db" --row-cache-bytes 0
    SCALE_ADDR[$size]=$ADDR SCALE_PID[$size]=$SPID SCALE_TOKEN[$size]=$TOKEN
    SIZES+=("$size")
  done
  for round in $(seq "$SCALE_ROUNDS"); do
    order=("${SIZES[@]}")
    if (( round % 2 == 0 )); then
      order=(); for (( i = ${#SIZES[@]} - 1; i >= 0; i-- )); do order+=("${SIZES[$i]}"); done
    fi
    log "growth: round $round of $SCALE_ROUNDS (${order[*]})"
    for size in "${order[@]}"; do
      ADDR=${SCALE_ADDR[$size]} SPID=${SCALE_PID[$size]} TOKEN=${SCALE_TOKEN[$size]}
      for what in get list; do
        url="http://$ADDR/$SERVICE/GetTimesheet"
        [[ $what == list ]] && url="http://$ADDR/$SERVICE/ListTimesheets"
        if (( round == 1 )); then
          check_call h2load "$url" "$WORK/$what.bin" $G yes 0
          (( WARMUP > 0 )) && run_h2load "$WARMUP" "$LOGS/scale-$size-$what-warmup.txt" "$url" "$WORK/$what.bin" yes
        fi
        method=GetTimesheet
        [[ $what == list ]] && method=ListTimesheets
        read -r ok0 bad0 _ < <(call_counts "$method" OK)
        run_h2load "$SCALE_DURATION" "$LOGS/scale-$size-$what-r$round.txt" "$url" "$WORK/$what.bin" yes "$WORK/scale.h2log"
        rm -f "$WORK/scale.h2log"
        # h2load counts a gRPC error as a success: a size whose calls failed
        # fast would look fast.
        read -r ok1 bad1 _ < <(call_counts "$method" OK)
        if (( bad1 != bad0 )); then
          GROWTH_BAD=$((GROWTH_BAD + bad1 - bad0))
          log "growth: $((bad1 - bad0)) $method calls failed at $size rows (round $round); the server's counts so far: $(curl -s "http://$ADDR/metrics" \
            | awk -v m="method=\"$method\"" '/^timesheets_requests_total\{/ && index($0, m) && !index($0, "code=\"OK\"") { printf "%s ", $0 }')"
        fi
        (( L_TERR == 0 )) || log "growth: $L_TERR transport errors at $size rows ($what, round $round)"
        SCALE[$size,$what,rps]+=" $L_RPS" SCALE[$size,$what,p50]+=" $L_P50" SCALE[$size,$what,p99]+=" $L_P99"
      done
    done
  done
  for size in "${SIZES[@]}"; do
    SPID=${SCALE_PID[$size]}
    stop_server
    rm -f "$WORK/scale-$size.db" "$WORK/scale-$size.db-wal" "$WORK/scale-$size.db-shm"
  done
  CONNS=$saved_conns
fi

# ---------- report ----------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
{
  echo "### Throughput and cost ($(nproc) cores shared with the load generator; ${DURATION}s per row after ${WARMUP}s warm-up; $CONNS connections, $THREADS load threads)"
  echo
  echo "| # | row | req/s | p50 ms | p99 ms | errors | server CPU s / 10k req | peak RSS MiB |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
  for n in 1 2 3 4 5 6 7 8 9 10; do [[ -n ${RES[$n]:-} ]] && echo "${RES[$n]}"; done
  echo
  echo "Ratios (targets from issue 6):"
  if [[ -n ${RPS[1]:-} && -n ${RPS[2]:-} ]]; then
    echo "- GetTimesheet / health ceiling: $(ratio "${RPS[2]}" "${RPS[1]}") (target >= 0.80)"
    [[ -n ${RPS[10]:-} ]] && echo "- GetTimesheet with the row cache off / health ceiling: $(ratio "${RPS[10]}" "${RPS[1]}")"
    if (( ${#PAIR_RATIOS[@]} > 0 )); then
      echo "- GetTimesheet / health, median of ${#PAIR_RATIOS[@]} back-to-back pairs of ${PAIR_SECONDS}s on one server:" \
        "$(printf '%s\n' "${PAIR_RATIOS[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')" \
        "(each: ${PAIR_RATIOS[*]}; target >= 0.80)"
      echo "- GetTimesheet / health carrying the same authorization header (unchecked), median of the same runs:" \
        "$(printf '%s\n' "${TOKEN_RATIOS[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')" \
        "(each: ${TOKEN_RATIOS[*]}; what auth and storage cost, without the token's transport)"
      echo "- GetTimesheet with the row cache off / health, median of the same runs:" \
        "$(printf '%s\n' "${UNCACHED_RATIOS[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')" \
        "(each: ${UNCACHED_RATIOS[*]}; every read from SQLite)"
    fi
    if [[ -n ${PAIR_CPU[get]:-} ]]; then
      cpu_median() { tr ' ' '\n' <<<"${PAIR_CPU[$1]}" | grep . | cut -d, -f"$2" | tr '\n' ' ' | median; }
      echo
      echo "CPU per call in the same runs, medians in µs (the server's, then h2load's on the same cores):"
      echo
      echo "| call | server user | server kernel | h2load user | h2load kernel | total |"
      echo "|---|---:|---:|---:|---:|---:|"
      for what in health token get; do
        case $what in
          health) label="health Check" ;;
          token) label="health Check carrying the token" ;;
          get) label="GetTimesheet" ;;
        esac
        echo "| $label | $(cpu_median "$what" 1) | $(cpu_median "$what" 2) | $(cpu_median "$what" 3) | $(cpu_median "$what" 4) | $(cpu_median "$what" 5) |"
      done
      echo
      echo "- GetTimesheet / health by total CPU per call: $(ratio "$(cpu_median health 5)" "$(cpu_median get 5)")" \
        "(what req/s would give with both cores busy and none lent elsewhere)"
    fi
  fi
  if [[ -n ${RPS[2]:-} && -n ${RPS[3]:-} ]]; then
    echo "- SQLite CreateTimesheet / GetTimesheet: $(ratio "${RPS[3]}" "${RPS[2]}") (target >= 0.50)"
  fi
  echo "- peak RSS over all rows: $(awk -v k="$PEAK_KB" 'BEGIN { printf "%.1f", k / 1024 }') MiB (target <= 64 MiB at $CONNS connections)"
  if (( ${#SIZES[@]} > 0 )); then
    first=${SIZES[0]} last=${SIZES[-1]}
    echo
    echo "### Cost must not grow with data (SQLite, the row cache off; $OWN_ROWS rows belong to the caller, the rest spread over 999 other users; $SCALE_CONNS connections; one server per size, all running, measured in $SCALE_ROUNDS alternating rounds of ${SCALE_DURATION}s; medians over the rounds)"
    echo
    echo "| rows in table | GetTimesheet req/s | p50 ms | p99 ms | ListTimesheets (50) req/s | p50 ms | p99 ms |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    for size in "${SIZES[@]}"; do
      printf '| %s | %.0f | %.2f | %.2f | %.0f | %.2f | %.2f |\n' "$size" \
        "$(median <<<"${SCALE[$size,get,rps]}")" "$(median <<<"${SCALE[$size,get,p50]}")" "$(median <<<"${SCALE[$size,get,p99]}")" \
        "$(median <<<"${SCALE[$size,list,rps]}")" "$(median <<<"${SCALE[$size,list,p50]}")" "$(median <<<"${SCALE[$size,list,p99]}")"
    done
    # Growth within each round (the last size against the first, minutes
    # apart at most), then the median over the rounds.
    growth() { # what stat -> "median (each round's)"
      local a b each=() r
      read -ra a <<<"${SCALE[$first,$1,$2]}"
      read -ra b <<<"${SCALE[$last,$1,$2]}"
      for r in "${!a[@]}"; do each+=("$(ratio "${b[$r]}" "${a[$r]}")"); done
      printf '%.2fx (rounds: %s)' "$(median <<<"${each[*]}")" "${each[*]}"
    }
    echo
    echo "Growth $first -> $last rows (target < 1.5x), median of the rounds' own ratios:" \
      "GetTimesheet p50 $(growth get p50), p99 $(growth get p99), throughput $(growth get rps);" \
      "ListTimesheets p50 $(growth list p50), p99 $(growth list p99), throughput $(growth list rps)"
    echo
    echo "Calls the server answered with another code than OK during these runs: $GROWTH_BAD" \
      "(CANCELLED ones, from the load generator stopping, not counted; the log names the codes)."
  fi
} >"$WORK/tables.md"
cat "$WORK/tables.md"
[[ -z $OUT ]] || cp "$WORK/tables.md" "$OUT"
