# Grafana with the ClickHouse datasource plugin installed at build time, so a container start
# downloads nothing (compose's `grafana` service builds it). The plugin lives outside
# /var/lib/grafana, where the data volume is mounted, so a new plugin version in this file
# reaches existing volumes too.
#
#   docker build -f infra/docker/grafana.Dockerfile -t pprofhouse-grafana:11.6.0-clickhouse-4.5.1 infra/docker
FROM grafana/grafana:11.6.0
ARG CLICKHOUSE_PLUGIN_VERSION=4.5.1
ENV GF_PATHS_PLUGINS=/usr/share/grafana-plugins
USER 0
RUN mkdir -p "$GF_PATHS_PLUGINS" \
    && grafana cli --pluginsDir "$GF_PATHS_PLUGINS" plugins install grafana-clickhouse-datasource "$CLICKHOUSE_PLUGIN_VERSION" \
    && chown -R 472:0 "$GF_PATHS_PLUGINS"
USER 472
