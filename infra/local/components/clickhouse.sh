# shellcheck shell=bash
# ClickHouse for local runs: the real engine from PyPI chdb-core (pinned in
# infra/local/clickhouse-requirements.txt, installed into $PPROFHOUSE_CACHE/venv) behind
# infra/local/chfront.py, a ClickHouse-HTTP-compatible front. Data in .state/clickhouse/.
# Clients must use compression none (the front does not implement ClickHouse block compression).

CLICKHOUSE_PORT="${PPROFHOUSE_LOCAL_CLICKHOUSE_PORT:-18123}"
CLICKHOUSE_VENV="$PPROFHOUSE_CACHE/venv"
CLICKHOUSE_REQUIREMENTS="$LOCAL_DIR/clickhouse-requirements.txt"
CLICKHOUSE_DATABASE="${PPROFHOUSE_LOCAL_CLICKHOUSE_DATABASE:-pprofhouse}"

# The port of the running instance (recorded at start, so a later `up`/`env` with another
# PPROFHOUSE_LOCAL_CLICKHOUSE_PORT still talks to it), else the configured one.
_clickhouse_port() {
    local f="$STATE_DIR/clickhouse.port" p
    if [[ -f $f ]] && is_running clickhouse && read -r p <"$f" && [[ $p =~ ^[0-9]+$ ]]; then
        printf '%s\n' "$p"
    else
        printf '%s\n' "$CLICKHOUSE_PORT"
    fi
}

# The venv is current when its stamp holds the checksum of the requirements file.
_clickhouse_stamp() { sha256sum "$CLICKHOUSE_REQUIREMENTS" | cut -d' ' -f1; }

clickhouse_install() {
    local stamp="$CLICKHOUSE_VENV/.pprofhouse-requirements.sha256" want
    want="$(_clickhouse_stamp)"
    if [[ -x $CLICKHOUSE_VENV/bin/python && -f $stamp && "$(cat "$stamp")" == "$want" ]] &&
        "$CLICKHOUSE_VENV/bin/python" -c 'import chdb' 2>/dev/null; then
        log "clickhouse: chdb-core already installed in $CLICKHOUSE_VENV"
        return 0
    fi
    command -v python3 >/dev/null || die "clickhouse: python3 is required (apt-get install python3 python3-venv)"
    if [[ ! -x $CLICKHOUSE_VENV/bin/python ]]; then
        log "clickhouse: creating venv $CLICKHOUSE_VENV"
        python3 -m venv "$CLICKHOUSE_VENV" ||
            die "clickhouse: python3 -m venv failed (on Debian: apt-get install python3-venv)"
    fi
    log "clickhouse: pip install -r $CLICKHOUSE_REQUIREMENTS (chdb-core is ~100 MB)"
    "$CLICKHOUSE_VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
        -r "$CLICKHOUSE_REQUIREMENTS" || die "clickhouse: pip install failed"
    "$CLICKHOUSE_VENV/bin/python" -c 'import chdb' ||
        die "clickhouse: chdb does not import after install"
    printf '%s\n' "$want" >"$stamp"
    log "clickhouse: installed $(grep '^chdb-core==' "$CLICKHOUSE_REQUIREMENTS")"
}

clickhouse_start() {
    [[ -x $CLICKHOUSE_VENV/bin/python ]] || die "clickhouse: no venv at $CLICKHOUSE_VENV (run infra/local/install clickhouse)"
    require_free_port clickhouse "$CLICKHOUSE_PORT"
    mkdir -p "$STATE_DIR/clickhouse"
    printf '%s\n' "$CLICKHOUSE_PORT" >"$STATE_DIR/clickhouse.port"
    start_bg clickhouse "$CLICKHOUSE_VENV/bin/python" "$LOCAL_DIR/chfront.py" \
        --host 127.0.0.1 --port "$CLICKHOUSE_PORT" --data "$STATE_DIR/clickhouse" \
        --create-database "$CLICKHOUSE_DATABASE"
}

clickhouse_health() {
    is_running clickhouse || return 1
    [[ "$(curl -fsS --max-time 5 "http://127.0.0.1:$(_clickhouse_port)/?query=SELECT%201" 2>/dev/null)" == 1 ]]
}

clickhouse_stop() { stop_bg clickhouse 30; }

clickhouse_env() {
    cat <<ENV
export PPROFHOUSE_CLICKHOUSE_URL=http://127.0.0.1:$(_clickhouse_port)
export PPROFHOUSE_CLICKHOUSE_USER=default
export PPROFHOUSE_CLICKHOUSE_PASSWORD=
export PPROFHOUSE_CLICKHOUSE_DATABASE=$CLICKHOUSE_DATABASE
export PPROFHOUSE_CLICKHOUSE_COMPRESSION=none
ENV
}
