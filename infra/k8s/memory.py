#!/usr/bin/env python3
"""The worker's worst-case memory, from its settings; checks the Deployment's limit against it.

    M = R + P + C*O + A*max(I, D) + I + 2*B

  C  worker.concurrency            objects fetched at once; each holds its compressed body (<= O)
  O  worker.max_object_bytes       largest object fetched
  I  worker.max_inflight_bytes     the in-flight ledger: exploded records waiting for the batch
                                   (and the decoded bytes in the CPU stage, below)
  D  limits.max_decompressed_bytes one profile larger than I still runs, alone
  A  12                            decode + explode working set per decoded byte (measured with
                                   heaptrack: ~29 MB for a 2.5 MB decoded heap profile; 3.5-4.3
                                   on 20-30 MiB synthetic profiles: infra/README.md)
  B  sink.batch_bytes              the batch being inserted, plus the open one, which stops
                                   taking results at B while the other is written
  P  worker.decode_pool_bytes      decode buffers kept from one profile for the next
  R  48 MiB                        the rest: runtime, librdkafka queues, S3/HTTP clients (the
                                   pipeline benchmark's worker peaks at 38 MiB on small profiles)

Usage:
  infra/k8s/memory.py                    read configmap.yaml and worker-deployment.yaml (the
                                         settings they pass, the defaults for the others), print
                                         M, exit 1 if the worker container's memory limit is below
  infra/k8s/memory.py --concurrency 16 --max-object-bytes 64Mi ...   print M for these settings
"""

import argparse
import pathlib
import re
import sys

import yaml

MI = 1 << 20
A = 12
R = 48 * MI
# The defaults of the settings (README.md, "Configuration").
DEFAULTS = {
    "concurrency": 16,
    "max_object_bytes": 64 * MI,
    "max_inflight_bytes": 64 * MI,
    "max_decompressed_bytes": 256 * MI,
    "batch_bytes": 64 * MI,
    "decode_pool_bytes": 32 * MI,
}
# Environment variable and flag of each setting.
ENV = {
    "concurrency": "PPROFHOUSE_CONCURRENCY",
    "max_object_bytes": "PPROFHOUSE_MAX_OBJECT_BYTES",
    "max_inflight_bytes": "PPROFHOUSE_MAX_INFLIGHT_BYTES",
    "max_decompressed_bytes": "PPROFHOUSE_MAX_DECOMPRESSED_BYTES",
    "batch_bytes": "PPROFHOUSE_BATCH_BYTES",
    "decode_pool_bytes": "PPROFHOUSE_DECODE_POOL_BYTES",
}
FLAG = {
    "concurrency": "--concurrency",
    "max_object_bytes": "--max-object-bytes",
    "max_inflight_bytes": "--max-inflight-bytes",
    "max_decompressed_bytes": "--max-decompressed-bytes",
    "batch_bytes": "--batch-bytes",
    "decode_pool_bytes": "--decode-pool-bytes",
}
UNITS = {"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "K": 10**3, "M": 10**6, "G": 10**9}


def quantity(s):
    """A Kubernetes quantity or a plain byte count (`67108864`, `64Mi`)."""
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|K|M|G)?", str(s).strip())
    if not m:
        sys.exit(f"memory.py: cannot read the quantity {s!r}")
    return int(m.group(1)) * UNITS[m.group(2) or ""]


def formula(s):
    return (
        R
        + s["decode_pool_bytes"]
        + s["concurrency"] * s["max_object_bytes"]
        + A * max(s["max_inflight_bytes"], s["max_decompressed_bytes"])
        + s["max_inflight_bytes"]
        + 2 * s["batch_bytes"]
    )


def from_manifests(k8s):
    settings = dict(DEFAULTS)
    cm = yaml.safe_load((k8s / "configmap.yaml").read_text())["data"]
    dep = yaml.safe_load((k8s / "worker-deployment.yaml").read_text())
    worker = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "worker")
    for k, var in ENV.items():  # the ConfigMap, then the container's env, then its flags
        if var in cm:
            settings[k] = quantity(cm[var])
        for e in worker.get("env", []):
            if e["name"] == var and "value" in e:
                settings[k] = quantity(e["value"])
        for a in worker.get("args", []):
            if a.startswith(FLAG[k] + "="):
                settings[k] = quantity(a.split("=", 1)[1])
    limit = quantity(worker["resources"]["limits"]["memory"])
    return settings, limit


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for k in DEFAULTS:
        p.add_argument("--" + k.replace("_", "-"), type=quantity)
    args = p.parse_args()
    given = {k: v for k, v in vars(args).items() if v is not None}
    if given:
        s = {**DEFAULTS, **given}
        limit = None
    else:
        s, limit = from_manifests(pathlib.Path(__file__).resolve().parent)
    need = formula(s)
    terms = ", ".join(f"{k}={v // MI if k != 'concurrency' else v}{'' if k == 'concurrency' else 'Mi'}" for k, v in s.items())
    print(f"worker memory worst case: {need / MI:.0f}Mi ({terms})")
    if limit is not None:
        print(f"worker-deployment.yaml limit: {limit / MI:.0f}Mi")
        if limit < need:
            sys.exit(f"memory.py: the worker's memory limit {limit / MI:.0f}Mi is below its worst case {need / MI:.0f}Mi: raise it or lower the settings")


if __name__ == "__main__":
    main()
