# shellcheck shell=bash
# Kafka for local runs: the tansu broker (Kafka protocol, pinned version, installed with
# `cargo install` into $PPROFHOUSE_CACHE/tansu-<version>), in-memory storage, on loopback.
# Starting it creates the topics: profiles (PPROFHOUSE_LOCAL_KAFKA_PARTITIONS partitions, default 4)
# and dead letters (1 partition). Memory storage: a restart starts empty (topics are created again).

KAFKA_PORT="${PPROFHOUSE_LOCAL_KAFKA_PORT:-19092}"
KAFKA_PARTITIONS="${PPROFHOUSE_LOCAL_KAFKA_PARTITIONS:-4}"
KAFKA_TOPIC="pprofhouse.profiles"
KAFKA_DLQ_TOPIC="pprofhouse.deadletter"
TANSU_VERSION="0.6.0"
TANSU_ROOT="$PPROFHOUSE_CACHE/tansu-$TANSU_VERSION"
TANSU_BIN="$TANSU_ROOT/bin/tansu"

_kafka_url() { printf 'tcp://127.0.0.1:%s\n' "$KAFKA_PORT"; }

kafka_install() {
    if [[ -x $TANSU_BIN ]]; then
        log "kafka: tansu $TANSU_VERSION already installed ($TANSU_BIN)"
        return 0
    fi
    command -v cargo >/dev/null || die "kafka: cargo is required to install tansu"
    local ilog="$PPROFHOUSE_CACHE/logs/tansu.log"
    mkdir -p "$PPROFHOUSE_CACHE/logs"
    log "kafka: cargo install tansu $TANSU_VERSION (takes ~12 min on 2 cores; log $ilog)"
    if ! cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore \
        --root "$TANSU_ROOT" >>"$ilog" 2>&1; then
        tail -n 30 "$ilog" >&2
        die "kafka: installing tansu failed (log $ilog)"
    fi
    [[ -x $TANSU_BIN ]] || die "kafka: $TANSU_BIN missing after install"
    log "kafka: installed $TANSU_BIN"
}

# _kafka_create_topic NAME PARTITIONS: create with tansu's CLI (an existing topic is fine).
_kafka_create_topic() {
    local out
    if out="$("$TANSU_BIN" topic create "$1" --partitions "$2" --broker "$(_kafka_url)" 2>&1)"; then
        log "kafka: topic $1 ($2 partitions) created"
        return 0
    fi
    if grep -qiE 'TopicAlreadyExists|already exists' <<<"$out"; then
        log "kafka: topic $1 already exists"
        return 0
    fi
    printf '%s\n' "$out" >>"$(logfile kafka)"
    warn "kafka: creating topic $1 failed: $(tail -n 3 <<<"$out")"
    return 1
}

kafka_start() {
    [[ -x $TANSU_BIN ]] || die "kafka: no tansu at $TANSU_BIN (run infra/local/install kafka)"
    require_free_port kafka "$KAFKA_PORT"
    RUST_LOG="${PPROFHOUSE_LOCAL_KAFKA_LOG:-warn}" start_bg kafka "$TANSU_BIN" broker \
        --listener-url "$(_kafka_url)" --advertised-listener-url "$(_kafka_url)" \
        --storage-engine memory://tansu/
    wait_for "kafka on port $KAFKA_PORT" 60 port_open 127.0.0.1 "$KAFKA_PORT" || return 1
    _kafka_create_topic "$KAFKA_TOPIC" "$KAFKA_PARTITIONS" || return 1
    _kafka_create_topic "$KAFKA_DLQ_TOPIC" 1 || return 1
}

kafka_health() {
    is_running kafka && port_open 127.0.0.1 "$KAFKA_PORT"
}

kafka_stop() { stop_bg kafka 20; }

kafka_env() {
    cat <<ENV
export PPROFHOUSE_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
export PPROFHOUSE_KAFKA_TOPIC=$KAFKA_TOPIC
export PPROFHOUSE_KAFKA_DLQ_TOPIC=$KAFKA_DLQ_TOPIC
# tansu 0.6.0 returns nothing for a fetch that starts inside a multi-record batch, so a consumer
# resuming mid-batch would stall: locally, producers write one record per batch.
export PPROFHOUSE_KAFKA_PRODUCER_PROPERTIES=batch.num.messages=1
ENV
}
