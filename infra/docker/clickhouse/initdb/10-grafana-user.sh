#!/bin/bash
# Run once by the clickhouse-server image's entrypoint, on the first start (empty data volume),
# against a temporary server listening on 127.0.0.1. The entrypoint may source this file, so it
# neither sets shell options nor exits.
#
# A read-only user for Grafana: SELECT on the pprofhouse database only. readonly = 2 forbids
# writes and DDL but lets the Grafana driver set per-query settings such as max_execution_time.
# (On a ClickHouse reachable from outside, prefer readonly = 1 with
# `max_execution_time CHANGEABLE_IN_READONLY`, as the plugin's documentation describes.)
clickhouse client --host 127.0.0.1 --user "${CLICKHOUSE_USER}" --password "${CLICKHOUSE_PASSWORD}" --multiquery <<SQL
CREATE USER IF NOT EXISTS grafana IDENTIFIED WITH sha256_password BY '${GRAFANA_CLICKHOUSE_PASSWORD:-grafana}'
    SETTINGS readonly = 2;
GRANT SELECT ON ${CLICKHOUSE_DB:-pprofhouse}.* TO grafana;
SQL
