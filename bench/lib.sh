# Shared by bench/run.sh and bench/callgrind.sh: starting and stopping the
# server, reading its counters, making its databases, and cleaning up on
# exit (sourcing this installs the trap). Source it after setting BIN (the
# release binary), WORK and LOGS (the work folder and its logs), KEY (the
# dev signing key's file), USER_EMAIL (the measured caller) and OWN_ROWS
# (that caller's seeded rows); READY_SECONDS first, to wait longer for the
# server to start.

SCRIPT=${0##*/}
# Prefix for the server's command line (bench/callgrind.sh runs it under valgrind).
SERVER_WRAPPER=()
READY_SECONDS=${READY_SECONDS:-30}

# ---------- process bookkeeping ----------
# Every process started here is in PIDS, so the caller's exit trap stops it.
PIDS=()
forget_pid() { local p keep=(); for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done; PIDS=("${keep[@]}"); }
stop_pid() {
  local pid=$1 i
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
}
# On any exit: stops every process started here, runs the caller's
# `cleanup_extra` if it defines one, and removes the work folder, which is
# kept (with its logs) after a failure or with KEEP_WORK=1.
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  if declare -F cleanup_extra >/dev/null; then cleanup_extra; fi
  if [[ $rc -ne 0 ]]; then
    echo "$SCRIPT: failed (rc=$rc); logs in $LOGS" >&2
  elif [[ ${KEEP_WORK:-0} == 1 ]]; then
    echo "$SCRIPT: work folder kept: $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
die() { echo "$SCRIPT: $*" >&2; exit 1; }
log() { echo "$SCRIPT: $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---------- server ----------
SPID= ADDR= TOKEN=
start_server() { # name database-url [more serve flags]
  local i code port
  port=$(free_port)
  ADDR=127.0.0.1:$port
  "${SERVER_WRAPPER[@]}" "$BIN" serve --dev --dev-key-file "$KEY" --listen "$ADDR" --database-url "$2" \
    --shutdown-grace 2s "${@:3}" >"$LOGS/server-$1.log" 2>&1 &
  SPID=$!
  PIDS+=("$SPID")
  local tries=$((READY_SECONDS * 10))
  for i in $(seq "$tries"); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://$ADDR/readyz" || true)
    [[ $code == 200 ]] && break
    kill -0 "$SPID" 2>/dev/null || die "server exited during startup: $(tail -5 "$LOGS/server-$1.log")"
    (( i < tries )) || die "server not ready after $READY_SECONDS s: $(tail -5 "$LOGS/server-$1.log")"
    sleep 0.1
  done
  # The dev issuer is http://<listen>/, so tokens are minted for this server's address.
  TOKEN=$("$BIN" token --listen "$ADDR" --dev-key-file "$KEY" --email "$USER_EMAIL" \
    --scope "create:timesheets read:timesheets")
}
HWM_KB=0
stop_server() {
  HWM_KB=$(awk '/^VmHWM:/{print $2}' "/proc/$SPID/status" 2>/dev/null || echo 0)
  stop_pid "$SPID"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SPID/stat"; }
# "<calls with the expected code> <calls with any other code> <calls cancelled>"
# for one method. CANCELLED is the client closing a stream: the load
# generator does that to the calls still in flight when its time is up, and
# those are not errors any client saw.
call_counts() { # method expected-code
  curl -s "http://$ADDR/metrics" | awk -v m="method=\"$1\"" -v c="code=\"$2\"" '
    /^timesheets_requests_total\{/ && index($0, m) {
      if (index($0, c)) good += $NF
      else if (index($0, "code=\"CANCELLED\"")) cancelled += $NF
      else bad += $NF
    }
    END { printf "%d %d %d\n", good, bad, cancelled }'
}

# A migrated, empty SQLite database: the server applies its migrations once,
# and every other SQLite database of the run is a copy of it.
TEMPLATE=$WORK/template.db
make_template() {
  start_server template "sqlite://$TEMPLATE"
  stop_server
  [[ -s $TEMPLATE ]] || die "the template database was not created"
}
fresh_db() { # path
  rm -f "$1" "$1-wal" "$1-shm"
  sqlite3 "$TEMPLATE" "VACUUM INTO '$1'"
}
# N rows in one transaction, in the columns of migrations/sqlite/:
# OWN_ROWS for the measured caller, the rest spread evenly over 999 other users
# (1,000 users in all), a third of them approved.
seed_db() { # path total-rows
  local total=$2 own=$OWN_ROWS
  (( total >= own )) || own=$total
  fresh_db "$1"
  sqlite3 "$1" <<SQL
PRAGMA synchronous = OFF;
BEGIN;
INSERT INTO timesheets (id, user_id, work_date, project, hours, notes, approved, approved_by,
                        create_time_us, approve_time_us, created_by, request_id, fingerprint)
WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < $total),
owned(n, u) AS (
  SELECT n, CASE WHEN n < $own THEN '$USER_EMAIL'
                 ELSE printf('user%04d@bench.example', 1 + (n - $own) % 999) END
  FROM seq)
SELECT printf('%032x', n), u, date('2024-01-01', printf('+%d days', n % 730)),
       'Project ' || (n % 7), 1 + (n % 8), 'seeded', n % 3 = 0,
       CASE WHEN n % 3 = 0 THEN 'manager@bench.example' ELSE '' END,
       1700000000000000 + n, CASE WHEN n % 3 = 0 THEN 1700000000000000 + n END,
       u, NULL, NULL
FROM owned;
COMMIT;
SQL
  local got
  got=$(sqlite3 "$1" "SELECT count(*) FROM timesheets")
  [[ $got == "$total" ]] || die "seeded $got rows into $1, expected $total"
}
