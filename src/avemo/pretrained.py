"""Pretrained weights the configured models ask for, fetched at the start of a run.

The Snakefile's ``onstart`` calls :func:`prefetch` in the main Snakemake process, on the
machine that submits the jobs (a cluster's login node, which has internet), before any job is
queued: training jobs on compute nodes, often offline, then read the torch hub cache.
``make weights`` does the same by hand. Torch is imported only when a model needs weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from avemo import params as P
from avemo import registry
from avemo.errors import TrainingError


def needed(cfg: Mapping[str, Any]) -> dict[str, str]:
    """``{weights name: on_missing policy}`` over the configured stream models whose ``weights``
    parameter is set and not null (config.yaml sets it for every model that has one; reading a
    constructor's default would import torch at every run's start). The policy is ``error``
    unless every model asking for those weights says ``scratch``."""
    out: dict[str, str] = {}
    for model in P.configured(cfg, *registry.STREAM_KINDS):
        params = P.model_config(cfg, model).get("params") or {}
        weights = params.get("weights")
        if weights is None:
            continue
        policy = str(params.get("on_missing_weights") or "error")
        out[str(weights)] = "error" if out.get(str(weights)) == "error" else policy
    return out


def prefetch(cfg: Mapping[str, Any], log: Callable[[str], None] = print) -> list[str]:
    """Fill the torch hub cache with every weights file :func:`needed` names (a file already
    cached is checked, not fetched). A file that cannot be had stops the run here, before the
    queue, when a model needs it (policy ``error``); with ``scratch`` it is logged and those
    models train from scratch, as configured. Returns the cached files."""
    wanted = needed(cfg)
    if not wanted:
        return []
    from avemo.models.vgg_backbone import WEIGHT_CHOICES, prefetch_weights  # torch: here only

    paths = []
    for weights, policy in wanted.items():
        if weights not in WEIGHT_CHOICES:
            continue  # the training job names the bad value (model build)
        try:
            paths += [str(p) for p in prefetch_weights((weights,))]
        except TrainingError as exc:
            if policy == "error":
                raise
            log(f"{exc}; the models that ask for them train from scratch "
                "(on_missing_weights: scratch)")
    for path in paths:
        log(f"pretrained weights cached for the training jobs: {path}")
    return paths
