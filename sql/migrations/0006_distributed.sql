-- Cluster mode only (`pprofhouse migrate --cluster NAME`): the Replicated* `_local` tables
-- above get Distributed tables under the plain names, which clients read and write.
-- cluster-only
CREATE TABLE IF NOT EXISTS {db}.profiles{on_cluster} AS {db}.profiles_local ENGINE = Distributed({cluster}, {db}, profiles_local, cityHash64(profile_id));
-- cluster-only
CREATE TABLE IF NOT EXISTS {db}.function_values{on_cluster} AS {db}.function_values_local ENGINE = Distributed({cluster}, {db}, function_values_local, cityHash64(profile_id));
-- cluster-only
CREATE TABLE IF NOT EXISTS {db}.stacks{on_cluster} AS {db}.stacks_local ENGINE = Distributed({cluster}, {db}, stacks_local, stack_hash);
-- cluster-only
CREATE TABLE IF NOT EXISTS {db}.stack_values{on_cluster} AS {db}.stack_values_local ENGINE = Distributed({cluster}, {db}, stack_values_local, cityHash64(profile_id));
-- cluster-only
CREATE TABLE IF NOT EXISTS {db}.function_values_hourly{on_cluster} AS {db}.function_values_hourly_local ENGINE = Distributed({cluster}, {db}, function_values_hourly_local);
-- cluster-only
CREATE TABLE IF NOT EXISTS {db}.function_values_daily{on_cluster} AS {db}.function_values_daily_local ENGINE = Distributed({cluster}, {db}, function_values_daily_local);
-- cluster-only
CREATE TABLE IF NOT EXISTS {db}.ingest{on_cluster} AS {db}.ingest_local ENGINE = Distributed({cluster}, {db}, ingest_local, cityHash64(profile_id));
