# shellcheck shell=bash
# S3 for local runs: s3s-fs (an S3-compatible server over a folder; pinned version, installed with
# `cargo install` into $PPROFHOUSE_CACHE/s3s-fs-<version>) on loopback, data in .state/s3/, static
# credentials, path-style addressing. A bucket is a directory: starting creates the bucket
# (PPROFHOUSE_LOCAL_S3_BUCKET, default `profiles`). s3s-fs sends no bucket notifications: use
# `pprofhouse ingest-event` or `pprofhouse backfill` to enqueue what lands there.

S3_PORT="${PPROFHOUSE_LOCAL_S3_PORT:-19000}"
S3_BUCKET="${PPROFHOUSE_LOCAL_S3_BUCKET:-profiles}"
S3_ACCESS_KEY="pprofhouse"
S3_SECRET_KEY="pprofhouse-secret"
S3S_VERSION="0.14.1"
S3S_ROOT="$PPROFHOUSE_CACHE/s3s-fs-$S3S_VERSION"
S3S_BIN="$S3S_ROOT/bin/s3s-fs"

s3_install() {
    if [[ -x $S3S_BIN ]]; then
        log "s3: s3s-fs $S3S_VERSION already installed ($S3S_BIN)"
        return 0
    fi
    command -v cargo >/dev/null || die "s3: cargo is required to install s3s-fs"
    local ilog="$PPROFHOUSE_CACHE/logs/s3s-fs.log"
    mkdir -p "$PPROFHOUSE_CACHE/logs"
    log "s3: cargo install s3s-fs $S3S_VERSION (takes ~2-4 min; log $ilog)"
    if ! cargo install s3s-fs --version "$S3S_VERSION" --features binary --locked \
        --root "$S3S_ROOT" >>"$ilog" 2>&1; then
        tail -n 30 "$ilog" >&2
        die "s3: installing s3s-fs failed (log $ilog)"
    fi
    [[ -x $S3S_BIN ]] || die "s3: $S3S_BIN missing after install"
    log "s3: installed $S3S_BIN"
}

s3_start() {
    [[ -x $S3S_BIN ]] || die "s3: no s3s-fs at $S3S_BIN (run infra/local/install s3)"
    require_free_port s3 "$S3_PORT"
    mkdir -p "$STATE_DIR/s3/$S3_BUCKET"
    RUST_LOG="${PPROFHOUSE_LOCAL_S3_LOG:-warn}" start_bg s3 "$S3S_BIN" --host 127.0.0.1 --port "$S3_PORT" \
        --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" "$STATE_DIR/s3"
}

# Healthy when it answers HTTP (an unsigned request gets an S3 error document, any status).
s3_health() {
    is_running s3 || return 1
    local code
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$S3_PORT/" 2>/dev/null)" || true
    [[ -n $code && $code != 000 ]]
}

s3_stop() { stop_bg s3 20; }

s3_env() {
    cat <<ENV
export PPROFHOUSE_S3_ENDPOINT=http://127.0.0.1:$S3_PORT
export PPROFHOUSE_S3_BUCKET=$S3_BUCKET
export PPROFHOUSE_S3_PATH_STYLE=true
export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
export AWS_REGION=us-east-1
ENV
}
