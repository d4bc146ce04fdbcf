# shellcheck shell=bash
# Shared helpers for infra/local/{install,up,down} and the components in infra/local/components/.
#
# A component NAME is the file components/NAME.sh defining:
#   NAME_install  install into $PPROFHOUSE_CACHE (idempotent: skip when present)
#   NAME_start    start in the background (use start_bg NAME ...), data under $STATE_DIR
#   NAME_health   exit 0 when it answers
#   NAME_stop     stop it (use stop_bg NAME)
#   NAME_env      print `export VAR=value` lines a client needs
# State (pidfiles, logs, data) lives in infra/local/.state/ (gitignored).

LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$LOCAL_DIR/../.." && pwd)"
export REPO_ROOT
STATE_DIR="$LOCAL_DIR/.state"
COMPONENTS_DIR="$LOCAL_DIR/components"
ENV_FILE="$LOCAL_DIR/env"
PPROFHOUSE_CACHE="${PPROFHOUSE_CACHE:-$HOME/.cache/pprofhouse}"
export PPROFHOUSE_CACHE
# Known components, in start order.
KNOWN_COMPONENTS=(clickhouse kafka s3)

log() { printf '[local] %s\n' "$*" >&2; }
warn() { printf '[local] warning: %s\n' "$*" >&2; }
die() { printf '[local] error: %s\n' "$*" >&2; exit 1; }

ensure_dirs() { mkdir -p "$STATE_DIR" "$PPROFHOUSE_CACHE"; }

pidfile() { printf '%s/%s.pid\n' "$STATE_DIR" "$1"; }
logfile() { printf '%s/%s.log\n' "$STATE_DIR" "$1"; }

# pid_of NAME: print the pid recorded for NAME if that process is alive and still the program we
# started (the pidfile's second line is a word of its command line); else print nothing, exit 1.
pid_of() {
    local f pid marker
    f="$(pidfile "$1")"
    [[ -f $f ]] || return 1
    { read -r pid; read -r marker; } <"$f" || true
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -n ${marker:-} && -r /proc/$pid/cmdline ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
    fi
    printf '%s\n' "$pid"
}

# CPU seconds (user + system) a running component has used so far; 0 when it is not running.
cpu_of() { # component
    local pid f
    pid=$(pid_of "$1") || { echo 0; return; }
    f=/proc/$pid/stat
    [[ -r $f ]] || { echo 0; return; }
    # utime and stime are fields 14 and 15 (after the parenthesized command name).
    sed 's/^.*) //' "$f" | awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($12 + $13) / hz }'
}

is_running() { pid_of "$1" >/dev/null; }

# start_bg NAME CMD [ARGS...]: run CMD detached (own session, stdin from /dev/null), stdout and
# stderr appended to .state/NAME.log, pid recorded in .state/NAME.pid.
start_bg() {
    local name=$1; shift
    ensure_dirs
    local log; log="$(logfile "$name")"
    printf '\n===== %s starting %s: %s\n' "$(date -Is)" "$name" "$*" >>"$log"
    setsid "$@" </dev/null >>"$log" 2>&1 &
    local pid=$! marker
    marker="$(basename "$1")"
    case "$marker" in python* | bash | sh | env) marker="$(basename "${2:-$1}")" ;; esac
    printf '%s\n%s\n' "$pid" "$marker" >"$(pidfile "$name")"
    log "$name started (pid $pid, log $log)"
}

# stop_bg NAME [TIMEOUT_SECONDS]: SIGTERM, wait, then SIGKILL; removes the pidfile.
stop_bg() {
    local name=$1 timeout=${2:-20} pid i
    if ! pid="$(pid_of "$name")"; then
        rm -f "$(pidfile "$name")"
        log "$name is not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "$name (pid $pid) did not stop in ${timeout}s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(pidfile "$name")"
    log "$name stopped"
}

# wait_for DESCRIPTION TIMEOUT_SECONDS CMD [ARGS...]: poll CMD every 0.2 s until it succeeds.
wait_for() {
    local desc=$1 timeout=$2; shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            warn "timed out after ${timeout}s waiting for $desc"
            return 1
        fi
        sleep 0.2
    done
}

# port_open HOST PORT: something accepts TCP connections there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# require_free_port NAME PORT: refuse to start NAME on a port some other program holds.
require_free_port() {
    if port_open 127.0.0.1 "$2"; then
        die "$1: port $2 is already in use by another program (set the port variable to move it)"
    fi
}

# tail_log NAME: show the end of a component's log (after a failure).
tail_log() {
    local log; log="$(logfile "$1")"
    [[ -f $log ]] && { log "last lines of $log:"; tail -n 30 "$log" >&2; }
    return 0
}

component_file() { printf '%s/%s.sh\n' "$COMPONENTS_DIR" "$1"; }

# present_components: every known component whose file exists, then any other components/*.sh.
present_components() {
    local c f
    for c in "${KNOWN_COMPONENTS[@]}"; do
        [[ -f $(component_file "$c") ]] && printf '%s\n' "$c"
    done
    for f in "$COMPONENTS_DIR"/*.sh; do
        [[ -f $f ]] || continue
        c="$(basename "$f" .sh)"
        [[ " ${KNOWN_COMPONENTS[*]} " == *" $c "* ]] || printf '%s\n' "$c"
    done
}

# load_component NAME: source its file and check it defines the interface. Returns 1 (with a
# message) if the file is missing or incomplete.
load_component() {
    local name=$1 f fn
    if [[ ! $name =~ ^[a-z0-9_]+$ ]]; then
        warn "bad component name '$name'"
        return 1
    fi
    f="$(component_file "$name")"
    if [[ ! -f $f ]]; then
        warn "component '$name': $f does not exist (known: ${KNOWN_COMPONENTS[*]}; present: $(present_components | tr '\n' ' '))"
        return 1
    fi
    # shellcheck source=/dev/null
    source "$f"
    for fn in install start health stop env; do
        if ! declare -F "${name}_$fn" >/dev/null; then
            warn "component '$name': $f does not define ${name}_$fn"
            return 1
        fi
    done
}

# resolve_components ARGS...: expand `all` (or no argument) to the present components; print one
# name per line.
resolve_components() {
    if (($# == 0)); then set -- all; fi
    local a
    for a in "$@"; do
        if [[ $a == all ]]; then present_components; else printf '%s\n' "$a"; fi
    done | awk '!seen[$0]++'
}

# write_env: (re)write infra/local/env with the exports of every running component.
write_env() {
    local c tmp any=0
    tmp="$(mktemp "$LOCAL_DIR/.env.XXXXXX")"
    {
        printf '# Written by infra/local/up at %s; source it: . infra/local/env\n' "$(date -Is)"
        for c in $(present_components); do
            load_component "$c" 2>/dev/null || continue
            if is_running "$c" || "${c}_health" >/dev/null 2>&1; then
                printf '# %s\n' "$c"
                "${c}_env"
                any=1
            fi
        done
    } >"$tmp"
    if ((any)); then
        mv "$tmp" "$ENV_FILE"
        log "wrote $ENV_FILE"
    else
        rm -f "$tmp" "$ENV_FILE"
        log "nothing running; removed $ENV_FILE"
    fi
}
