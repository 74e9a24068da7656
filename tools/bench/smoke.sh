#!/usr/bin/env bash
# Checks every bench anchor end to end against a real daprd and a private redis-server, and
# prints a first, rough figure for each (one wrk run, not the bench's interleaved medians):
#   - direct:  wrk straight at daprd's POST /v1.0/publish (the same metadata as ours);
#   - gosdk:   tools/bench/gosdk-publisher (go-sdk over gRPC);
#   - python:  the Python publisher (FastAPI + DaprClient per request, uvicorn);
#   - noop single / noop bulk: tools/cmd/noop-worker draining a backlog through a declarative
#     subscription, one event per delivery and bulkSubscribe;
#   - python worker: the Python worker draining a backlog through its programmatic
#     subscription (GET /dapr/subscribe).
# Everything it starts is stopped on exit; it never touches another redis-server.
# Settings: DAPRD (else tools/daprd/build.sh), WRK_SECONDS (5), WRK_CONNECTIONS (32),
# BACKLOG_SECONDS (1: how long wrk fills the stream before each drain).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${WRK_SECONDS:-5}
conns=${WRK_CONNECTIONS:-32}
fill=${BACKLOG_SECONDS:-1}
for tool in redis-server redis-cli wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "smoke: $tool is not installed (apt-get install -y redis-server wrk curl python3)" >&2; exit 1; }
done

daprd=${DAPRD:-$("$root/tools/daprd/build.sh")}
gosdk=$("$root/tools/bench/gosdk-publisher/build.sh")
uvicorn=$("$root/tools/bench/python/install.sh")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/taskevents-bench-smoke-XXXXXX")
(cd "$root/tools" && GOWORK=off GOFLAGS= go build -o "$tmp/noop-worker" ./cmd/noop-worker)

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "smoke: logs kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
# start NAME CMD...: runs CMD in the background, output to $tmp/NAME.log; sets $last.
start() {
  local name=$1
  shift
  "$@" >"$tmp/$name.log" 2>&1 &
  last=$!
  pids+=("$last")
}
# stop PID: SIGTERM and wait, so its ports are free before the next step.
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# wait_for WHAT SECONDS CMD...: polls CMD until it succeeds, or fails naming WHAT.
wait_for() {
  local what=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "smoke: $what not ready in time; logs in $tmp (KEEP=1 keeps them)" >&2
      KEEP=1
      exit 1
    fi
    sleep 0.1
  done
}
http_code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
is_code() { local want=$1; shift; [ "$(http_code "$@")" = "$want" ]; }

rport=$(freeport)
start redis redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --daemonize no
wait_for redis-server 10 redis-cli -p "$rport" ping
rcli() { redis-cli -p "$rport" "$@"; }

# Resources: the project's Redis component pointed at this redis-server; the declarative
# subscription for the no-op worker (its bulk variant raises the component's concurrency to
# maxMessagesCount, or deliveries wait on the 1 s timer); none for the Python worker, which
# subscribes programmatically.
mkdir -p "$tmp/res-pub" "$tmp/res-noop" "$tmp/res-bulk" "$tmp/res-python"
sed "s|value: redis-master.default.svc.cluster.local:6379|value: 127.0.0.1:$rport|" "$root/components/redis.yaml" >"$tmp/res-pub/redis.yaml"
grep -q "127.0.0.1:$rport" "$tmp/res-pub/redis.yaml" || { echo "smoke: could not patch redisHost in components/redis.yaml" >&2; exit 1; }
cp "$tmp/res-pub/redis.yaml" "$tmp/res-python/"
cp "$tmp/res-pub/redis.yaml" "$root/subscriptions/task-events.yaml" "$tmp/res-noop/"
sed '/name: concurrency/{n;s/value: "10"/value: "100"/}' "$tmp/res-pub/redis.yaml" >"$tmp/res-bulk/redis.yaml"
sed 's/^  deadLetterTopic:/  bulkSubscribe:\n    enabled: true\n    maxMessagesCount: 100\n    maxAwaitDurationMs: 10\n  deadLetterTopic:/' \
  "$root/subscriptions/task-events.yaml" >"$tmp/res-bulk/task-events.yaml"

daprd_args() { # APP_ID HTTP GRPC RESOURCES [extra...]
  local id=$1 http=$2 grpc=$3 res=$4
  shift 4
  echo --app-id "$id" --mode standalone --log-level warn --dapr-listen-addresses 127.0.0.1 \
    --dapr-http-port "$http" --dapr-grpc-port "$grpc" --dapr-internal-grpc-listen-address 127.0.0.1 \
    --enable-metrics=false --resources-path "$res" "$@"
}

# --- publishers -------------------------------------------------------------------------
ph=$(freeport) pg=$(freeport)
# shellcheck disable=SC2046
start daprd-pub "$daprd" $(daprd_args task-api "$ph" "$pg" "$tmp/res-pub")
wait_for "publisher daprd" 60 is_code 204 "http://127.0.0.1:$ph/v1.0/healthz"

cat >"$tmp/tasks.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"title":"Buy milk"}'
wrk.headers["Content-Type"] = "application/json"
EOF
# Direct publishes carry a fixed id: daprd does not check it, and a per-request uuid in Lua
# would cost wrk CPU the other runs do not pay.
cat >"$tmp/direct.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"event_type":"task.created","task_id":"00000000-0000-4000-8000-000000000000","title":"Buy milk"}'
wrk.headers["Content-Type"] = "application/json"
EOF
direct="http://127.0.0.1:$ph/v1.0/publish/pubsub/task-events?metadata.cloudevent.id=00000000-0000-4000-8000-000000000000&metadata.cloudevent.type=task.created&metadata.partitionKey=00000000-0000-4000-8000-000000000000"

# bench NAME URL SCRIPT: one wrk run after a 1 s warm-up; prints requests/s and non-2xx.
bench() {
  local name=$1 url=$2 script=$3
  wrk -t1 -c"$conns" -d1s -s "$script" "$url" >/dev/null
  wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$script" "$url" >"$tmp/wrk-$name.txt"
  local rps p50 bad
  rps=$(awk '/^Requests\/sec/ {print $2}' "$tmp/wrk-$name.txt")
  p50=$(awk '$1 == "50%" {print $2}' "$tmp/wrk-$name.txt")
  bad=$(awk '/Non-2xx/ {print $NF}' "$tmp/wrk-$name.txt")
  printf 'smoke %-14s %9s req/s  p50 %-8s non-2xx %s  (wrk -t1 -c%s -d%ss)\n' "$name:" "$rps" "$p50" "${bad:-0}" "$conns" "$secs"
}
# publish_once NAME URL WANT: one POST /tasks, its status, and one more entry in the stream.
publish_once() {
  local name=$1 url=$2 want=$3 before after code
  before=$(rcli XLEN task-events)
  code=$(curl -s -o "$tmp/$name-answer.json" -w '%{http_code}' -H 'Content-Type: application/json' -d '{"title":"Buy milk"}' "$url")
  after=$(rcli XLEN task-events)
  if [ "$code" != "$want" ] || [ "$after" -ne $((before + 1)) ]; then
    echo "smoke: $name answered $code (want $want), stream $before -> $after: $(cat "$tmp/$name-answer.json")" >&2
    KEEP=1
    exit 1
  fi
  echo "smoke $name: POST /tasks -> $code $(cat "$tmp/$name-answer.json"), XLEN $before -> $after"
}

bench direct "$direct" "$tmp/direct.lua"

ap=$(freeport)
start gosdk-publisher env APP_PORT="$ap" DAPR_GRPC_PORT="$pg" "$gosdk"
gosdk_pid=$last
wait_for "go-sdk publisher" 30 is_code 200 "http://127.0.0.1:$ap/healthz"
publish_once gosdk "http://127.0.0.1:$ap/tasks" 202
bench gosdk "http://127.0.0.1:$ap/tasks" "$tmp/tasks.lua"
stop "$gosdk_pid"

ap=$(freeport)
# The lesson's command line (uvicorn main:app), with --app-dir instead of a cd; the dapr
# SDK finds daprd through DAPR_GRPC_PORT (and DAPR_HTTP_PORT for its health wait).
start python-publisher env DAPR_HTTP_PORT="$ph" DAPR_GRPC_PORT="$pg" \
  "$uvicorn" main:app --app-dir "$here/python/publisher" --host 127.0.0.1 --port "$ap" --log-level warning
python_pub_pid=$last
wait_for "Python publisher" 30 is_code 200 "http://127.0.0.1:$ap/openapi.json"
publish_once python "http://127.0.0.1:$ap/tasks" 200
bench python "http://127.0.0.1:$ap/tasks" "$tmp/tasks.lua"
stop "$python_pub_pid"

# --- workers: each drains a fresh backlog --------------------------------------------------
# backlog: a new stream (no consumer groups) of whatever wrk publishes directly in $fill s.
backlog() {
  rcli DEL task-events task-events-deadletter >/dev/null
  wrk -t1 -c"$conns" -d"${fill}s" -s "$tmp/direct.lua" "$direct" >/dev/null
  rcli XLEN task-events
}
now_ms() { date +%s%3N; }
# drain NAME N PROBE: PROBE prints how many of the N events are done; the rate is taken from
# the first done event to the last, so daprd's start-up is not in it.
drain() {
  local name=$1 n=$2 probe=$3 deadline=$((SECONDS + 120)) done=0 t0=
  while :; do
    done=$($probe)
    if [ -z "$t0" ] && [ "$done" -gt 0 ]; then t0=$(now_ms) d0=$done; fi
    [ "$done" -ge "$n" ] && break
    if [ $SECONDS -ge $deadline ]; then
      echo "smoke: $name handled $done of $n events in 120 s; logs in $tmp" >&2
      KEEP=1
      exit 1
    fi
    sleep 0.05
  done
  local ms=$(($(now_ms) - t0))
  [ "$ms" -gt 0 ] || ms=1
  printf 'smoke %-14s %9s events/s  (%s events, %s ms from the first to the last)\n' "$name:" $(((n - d0) * 1000 / ms)) "$n" "$ms"
}
pending_zero() { [ "$(rcli XPENDING task-events task-worker | head -1)" = 0 ]; }
# groupdone: entries the worker's consumer group has read and acknowledged (Redis 7 XINFO).
groupdone() {
  local read pending
  read=$(rcli XINFO GROUPS task-events 2>/dev/null | awk 'p {print; exit} $0 == "entries-read" {p=1}')
  pending=$(rcli XPENDING task-events task-worker 2>/dev/null | head -1)
  [[ $read =~ ^[0-9]+$ ]] || read=0
  [[ $pending =~ ^[0-9]+$ ]] || pending=0
  echo $((read - pending))
}

for mode in noop bulk; do
  n=$(backlog)
  wp=$(freeport) wh=$(freeport) wg=$(freeport)
  start "noop-worker-$mode" env APP_PORT="$wp" "$tmp/noop-worker"
  noop_pid=$last
  wait_for "noop worker" 10 is_code 200 "http://127.0.0.1:$wp/readyz"
  # shellcheck disable=SC2046
  start "daprd-$mode" "$daprd" $(daprd_args task-worker "$wh" "$wg" "$tmp/res-$mode" \
    --app-port "$wp" --app-protocol http --disable-init-endpoints subscribe)
  daprd_pid=$last
  count() { curl -s "http://127.0.0.1:$wp/count"; }
  drain "noop $mode" "$n" count
  wait_for "pending=0 after the noop $mode drain" 10 pending_zero
  # Every event answered once: a bulk answer daprd could not read would be redelivered.
  got=$(count)
  if [ "$got" != "$n" ]; then
    echo "smoke: the noop worker ($mode) counted $got events for a backlog of $n" >&2
    KEEP=1
    exit 1
  fi
  stop "$daprd_pid"
  stop "$noop_pid"
done

n=$(backlog)
wp=$(freeport) wh=$(freeport) wg=$(freeport)
start python-worker "$uvicorn" main:app --app-dir "$here/python/worker" --host 127.0.0.1 --port "$wp"
python_worker_pid=$last
wait_for "Python worker" 30 is_code 200 "http://127.0.0.1:$wp/dapr/subscribe"
# No --disable-init-endpoints: daprd must ask GET /dapr/subscribe for the route.
# shellcheck disable=SC2046
start daprd-python "$daprd" $(daprd_args task-worker "$wh" "$wg" "$tmp/res-python" --app-port "$wp" --app-protocol http)
daprd_pid=$last
drain "python worker" "$n" groupdone
wait_for "pending=0 after the python worker's drain" 10 pending_zero
got=$(grep -c 'EVENT RECEIVED' "$tmp/python-worker.log" || true)
echo "smoke python worker: logged EVENT RECEIVED $got times for $n events; XPENDING 0"
stop "$daprd_pid"
stop "$python_worker_pid"
echo "smoke: all anchors work (load average $(cut -d' ' -f1-3 /proc/loadavg))"
