#!/usr/bin/env bash
# The fleet of docker-compose.yml, really up: a private Docker engine, the image built from the
# Dockerfile (its `prebuilt` target, with the host's target/debug/akkaflow), `docker compose up` with
# tests/compose/docker-compose.ci.yml (MariaDB for MySQL 8, no published port), then:
#   1. every example fires and succeeds across the two worker containers (a re-run of `sync` adds the
#      test's own workflows, as the README tells users to change definitions);
#   2. `docker compose kill` of the master scheduler's container: the standby takes over and a cron
#      fires after it;
#   3. a worker container killed mid-task: the task is rescued and finishes on the other worker;
#   4. `akkaflow check` finds no broken invariant.
# Then everything is torn down: containers, networks, volumes and the engine itself. Only caches stay
# in $AKKAFLOW_CI_CACHE (the Debian base tarball, the compose plugin, the engine's image store).
#
# Needs root and the Debian mirror (apt). Idempotent: it first cleans up after an interrupted run.
# Docker Hub is never contacted. The engine leaves the host's network alone (no iptables, no bridge).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

CACHE=${AKKAFLOW_CI_CACHE:-/var/cache/akkaflow-ci}
STATE=/run/akkaflow-compose
EXEC_ROOT=$STATE/exec
DATA_ROOT=$CACHE/docker
SOCK=$STATE/docker.sock
PROJECT=akkaflow-ci
DEFS=$STATE/xmlconfig
BASE_TAR=$CACHE/debian-bookworm-minbase.tar
PLUGINS=$CACHE/compose-plugins/usr/libexec/docker/cli-plugins
DOCKER=/usr/bin/docker # the engine's own client (docker.io), whatever else is on PATH

export DOCKER_HOST=unix://$SOCK
export DOCKER_CONFIG=$STATE/client
export AKKAFLOW_COMPOSE_DEFS=$DEFS
export DOCKER_BUILDKIT=1

STARTED=$(date +%s)
log() { printf '==> [%3ds] %s\n' "$(($(date +%s) - STARTED))" "$*" >&2; }
fail() {
    log "FAILED: $*"
    exit 1
}

# wait_for SECONDS WHAT CMD...: run CMD every second until it succeeds; fail after SECONDS.
wait_for() {
    local limit=$1 what=$2
    shift 2
    local deadline=$(($(date +%s) + limit))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "gave up after ${limit}s waiting for: $what"
        sleep 1
    done
}

compose() {
    "$DOCKER" compose --progress quiet -p "$PROJECT" --project-directory "$ROOT" \
        -f "$ROOT/docker-compose.yml" -f "$ROOT/tests/compose/docker-compose.ci.yml" "$@"
}

# akkaflow ARGS...: the CLI inside the HTTP container (it has the fleet's database URL).
akkaflow() { compose exec -T http akkaflow "$@"; }

engine_up() { [ -S "$SOCK" ] && "$DOCKER" version >/dev/null 2>&1; }

# ---------------------------------------------------------------- tools, cached where slow to get
install_tools() {
    local missing=()
    [ -x /usr/sbin/dockerd ] && [ -x "$DOCKER" ] || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # The compose v2 and buildx plugins are Debian trixie's: fetched with a private apt
    # configuration (sources, lists, cache) so the system's apt sources stay as they are.
    if [ ! -x "$PLUGINS/docker-compose" ] || [ ! -x "$PLUGINS/docker-buildx" ]; then
        log "fetching the compose and buildx plugins from Debian trixie"
        local apt=$CACHE/apt
        rm -rf "$apt" "$CACHE/compose-plugins"
        mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/debs"
        echo 'deb http://deb.debian.org/debian trixie main' >"$apt/sources.list"
        local opts=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o Dir::Etc::sourceparts=-
            -o "Dir::State::Lists=$apt/lists" -o Dir::State::status=/dev/null
            -o "Dir::Cache=$apt" -o "Dir::Cache::archives=$apt/archives"
            -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
        apt-get "${opts[@]}" update -qq
        (cd "$apt/debs" && apt-get "${opts[@]}" download docker-compose docker-buildx -qq)
        for deb in "$apt"/debs/*.deb; do dpkg -x "$deb" "$CACHE/compose-plugins"; done
        rm -rf "$apt"
    fi
    # The Debian base the images build on: debootstrap once, then the cached tarball.
    if [ ! -s "$BASE_TAR" ]; then
        log "debootstrap bookworm (about 70 s, cached in $CACHE)"
        local dir=$CACHE/debootstrap
        rm -rf "$dir"
        debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1 ||
            {
                tail -20 "$CACHE/debootstrap.log" >&2
                fail "debootstrap"
            }
        rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
        tar -C "$dir" -cf "$BASE_TAR.tmp" .
        mv "$BASE_TAR.tmp" "$BASE_TAR"
        rm -rf "$dir"
    fi
}

# ---------------------------------------------------------------- the private engine
engine_start() {
    mkdir -p "$STATE" "$EXEC_ROOT" "$DATA_ROOT" "$DOCKER_CONFIG/cli-plugins"
    ln -sf "$PLUGINS/docker-compose" "$PLUGINS/docker-buildx" "$DOCKER_CONFIG/cli-plugins/"
    # its own configuration, and its identity key kept out of /etc/docker
    printf '{"deprecated-key-path": "%s"}\n' "$STATE/key.json" >"$STATE/daemon.json"
    log "starting a private dockerd ($SOCK)"
    # setsid: the engine is not in this script's process group, so ^C reaches the script, whose
    # trap then stops the engine in order.
    setsid /usr/sbin/dockerd \
        --config-file "$STATE/daemon.json" \
        --data-root "$DATA_ROOT" \
        --exec-root "$EXEC_ROOT" \
        --pidfile "$STATE/dockerd.pid" \
        -H "unix://$SOCK" \
        --iptables=false --ip-forward=false --ip-masq=false --bridge=none \
        --userland-proxy=false \
        >"$STATE/dockerd.log" 2>&1 </dev/null &
    wait_for 60 "dockerd to answer" engine_up || true
    engine_up || {
        tail -30 "$STATE/dockerd.log" >&2
        fail "dockerd did not start"
    }
}

# Stops the engine (by its pid file) and whatever it left mounted; safe to call at any point.
engine_stop() {
    local pid
    pid=$(cat "$STATE/dockerd.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        local deadline=$(($(date +%s) + 60))
        while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    # the containerd the engine started, if the engine died without stopping it
    pid=$(cat "$EXEC_ROOT/containerd/containerd.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; fi
    local m
    for m in $(findmnt -rn -o TARGET | grep -E "^($STATE|$DATA_ROOT)/" | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$STATE"
}

# The project's containers, networks and volumes, then the engine: the host as it was.
teardown() {
    local rc=$?
    if engine_up; then
        if [ "$rc" -ne 0 ]; then
            log "logs of the fleet (last lines of each service)"
            compose logs --no-color --tail 30 >&2 2>&1 || true
        fi
        log "tearing down"
        compose down --volumes --remove-orphans --timeout 5 >/dev/null 2>&1 || true
        # the images stay as a cache; superseded ones and build steps unused for a day go
        "$DOCKER" image prune -f >/dev/null 2>&1 || true
        "$DOCKER" builder prune -f --filter until=24h >/dev/null 2>&1 || true
    fi
    engine_stop
    log "done (exit $rc)"
    exit "$rc"
}

# ---------------------------------------------------------------- checks
# py EXPR: python3 EXPR with the JSON read from stdin as `d`.
py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }

# The compose service whose container has this host name (Docker's default: the id's first 12 chars).
service_of_host() {
    local svc
    for svc in scheduler-1 scheduler-2 worker-1 worker-2; do
        if [ "$(compose ps -q "$svc" 2>/dev/null | cut -c1-12)" = "$1" ]; then
            echo "$svc"
            return
        fi
    done
}

all_healthy() {
    local svc status
    for svc in mysql scheduler-1 scheduler-2 worker-1 worker-2 http; do
        status=$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$(compose ps -q "$svc")") || return 1
        [ "$status" = healthy ] || return 1
    done
}

latest_status() { # WORKFLOW: the status of its newest instance
    akkaflow instance list --workflow "$1" --limit 1 --json | py 'print(d[0]["status"] if d else "none")'
}
succeeded() { [ "$(latest_status "$1")" = succeeded ]; }
instances_of() { akkaflow instance list --workflow "$1" --limit 500 --json | py 'print(len(d))'; }
instance_status() { akkaflow instance info "$1" --json | py 'print(d["instance"]["status"])'; }

# "HOST PID BEAT" of the scheduler that last beat as master (BEAT: its heartbeat, Unix seconds); a
# killed master's row still says master, with a heartbeat that no longer moves.
master() {
    akkaflow status --json | py '
from datetime import datetime
rows = [(datetime.fromisoformat(s["heartbeat_at"].replace("Z", "+00:00")).timestamp(), s["host"], s["pid"])
        for s in d["schedulers"] if s["state"] == "master"]
if rows:
    beat, host, pid = max(rows)
    print(host, pid, int(beat))'
}

# The compose service of the worker running INSTANCE's task (worker ids are NAME-PID-XXXX).
running_worker() {
    akkaflow instance info "$1" --json | py '
for t in d["tasks"]:
    if t["status"] == "running" and t.get("worker_id"):
        print(t["worker_id"].rsplit("-", 2)[0])'
}

# The worker names whose attempts ran tasks of INSTANCE.
workers_of() {
    akkaflow instance info "$1" --json | py '
print(" ".join(sorted({a["worker_id"].rsplit("-", 2)[0] for a in d["attempts"] if a.get("worker_id")})))'
}

trap teardown EXIT
trap 'exit 130' INT TERM

install_tools
log "cleaning up after any earlier run"
engine_stop
engine_start
compose down --volumes --remove-orphans --timeout 5 >/dev/null 2>&1 || true

if ! "$DOCKER" image inspect local/debian:bookworm >/dev/null 2>&1; then
    log "importing the Debian base image"
    "$DOCKER" import - local/debian:bookworm <"$BASE_TAR" >/dev/null
fi

log "building the images (one build at a time)"
cargo build --quiet --bin akkaflow
build() {
    compose --progress plain build "$1" >"$STATE/build-$1.log" 2>&1 || {
        tail -40 "$STATE/build-$1.log" >&2
        fail "building $1"
    }
}
build mysql
build sync

rm -rf "$DEFS"
cp -r "$ROOT/xmlconfig" "$DEFS"
log "docker compose up"
compose up -d --no-build
wait_for 180 "every service healthy" all_healthy
[ "$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$(compose ps -a -q sync)")" = 0 ] || fail "sync failed"

log "re-running sync with the test's workflows added (as the README says to change definitions)"
cp "$ROOT"/tests/compose/xmlconfig/*.xml "$DEFS/"
compose run --rm -T sync >/dev/null
akkaflow workflow info compose_tick >/dev/null || fail "the re-run of sync did not load compose_tick"

log "1. the examples fire and succeed"
pids=()
for wf in chain_ingest daily_etl parallel_sum flaky_import; do
    compose exec -T http timeout 170 akkaflow workflow trigger "$wf" --wait >/dev/null &
    pids+=($!)
done
compose exec -T http timeout 170 akkaflow workflow run sqlite_etl --wait >/dev/null &
pids+=($!)
for p in "${pids[@]}"; do wait "$p" || fail "an example did not succeed (see the logs below)"; done
# chain_clean and chain_report fire on their upstream's success
wait_for 120 "chain_report to succeed after chain_ingest" succeeded chain_report
succeeded chain_clean || fail "chain_clean did not succeed"
spanned=()
for i in $(akkaflow instance list --json | py 'print(" ".join(str(i["id"]) for i in d))'); do
    ran_on=$(workers_of "$i")
    [ "$ran_on" = "worker-1 worker-2" ] && spanned+=("$(akkaflow instance info "$i" --json | py 'print(d["instance"]["workflow"])')")
    echo "$ran_on"
done >"$STATE/workers"
grep -qw worker-1 "$STATE/workers" && grep -qw worker-2 "$STATE/workers" ||
    fail "the examples did not run on both workers: $(sort "$STATE/workers" | uniq -c | tr '\n' ' ')"
log "the examples succeeded on both workers; instances that ran on both: ${spanned[*]:-none}"

log "2. the master scheduler's container killed: the standby takes over, firing continues"
read -r host pid _ < <(master)
svc=$(service_of_host "$host")
[ -n "$svc" ] || fail "no scheduler container has the master's host name $host"
reports=$(instances_of chain_report)
killed_at=$(date +%s)
compose kill "$svc" >/dev/null
log "killed $svc (master $host pid $pid)"
new_master() {
    local h p beat
    read -r h p beat < <(master) && [ "$h $p" != "$host $pid" ] && [ "$beat" -gt "$killed_at" ]
}
wait_for 90 "a new master" new_master
read -r h p _ < <(master)
log "new master: $(service_of_host "$h") ($h pid $p)"
compose exec -T http timeout 120 akkaflow workflow trigger chain_ingest --wait >/dev/null || fail "chain_ingest after the failover"
# chain_clean and chain_report fire on their upstream's success: the new master's work
more_reports() { [ "$(instances_of chain_report)" -gt "$reports" ] && succeeded chain_report; }
wait_for 120 "chain_report to fire again on chain_ingest's success" more_reports
# the newest compose_tick was created (by its cron) after the kill, and succeeded
ticked() {
    akkaflow instance list --workflow compose_tick --limit 1 --json | py '
from datetime import datetime
i = d[0] if d else None
ok = i and i["status"] == "succeeded" and i["trigger_kind"] == "cron" \
    and datetime.fromisoformat(i["created_at"].replace("Z", "+00:00")).timestamp() > '"$killed_at"'
sys.exit(0 if ok else 1)'
}
wait_for 150 "compose_tick (every minute) to fire and succeed after the failover" ticked

log "3. a worker container killed mid-task: the task is rescued"
id=$(akkaflow workflow run compose_slow)
has_running_worker() { [ -n "$(running_worker "$id")" ]; }
wait_for 60 "instance $id to run on a worker" has_running_worker
victim=$(running_worker "$id")
case "$victim" in worker-1 | worker-2) ;; *) fail "unexpected worker $victim" ;; esac
compose kill "$victim" >/dev/null
log "killed $victim while it ran instance $id"
rescued() { [ "$(instance_status "$id")" = succeeded ]; }
wait_for 120 "instance $id to be rescued and succeed" rescued
ran_on=$(workers_of "$id")
log "instance $id ran on: $ran_on"
[ "$ran_on" = "worker-1 worker-2" ] || fail "instance $id was not rescued by the other worker"

log "4. akkaflow check"
akkaflow check || fail "akkaflow check found broken invariants"

log "passed"
