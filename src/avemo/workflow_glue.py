"""Snakemake params functions shared by the rules (kept here: rule files hold rules only).

Each returns a function of a job's wildcards (and outputs) that Snakemake evaluates per job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import codedeps
from . import params as P
from .config import config_hash


def model_of(wildcards: Any) -> str | None:
    """The registered model a job runs (its ``model`` wildcard, variants resolved)."""
    model = getattr(wildcards, "model", None)
    return None if model is None else str(model).split("@", 1)[0]


def job_params(rule: str, cfg: Mapping[str, Any]) -> Callable[[Any], str]:
    return lambda w: P.as_json(P.job_params(rule, cfg, w))


def code(command: str) -> Callable[[Any], str]:
    """The digest of the package code the job runs: Snakemake's code trigger sees only the
    shell string, so editing a module the job imports reruns it through this param."""
    return lambda w: codedeps.digest(command, model_of(w))


def hashed(rule: str, command: str, cfg: Mapping[str, Any]) -> Callable[[Any], str]:
    """Checkpoints resume only under the same params *and* code: a rerun caused by a code
    change must not pick up a model trained by the old code."""
    return lambda w: config_hash([P.job_params(rule, cfg, w),
                                  codedeps.digest(command, model_of(w))])


def paths_json(fn: Callable[..., Any], cfg: Mapping[str, Any], *keys: str) -> Callable[[Any], str]:
    """A job's input path map as JSON for its CLI call: ``fn(cfg, *wildcard values)``."""
    return lambda w: P.as_json(fn(cfg, *(getattr(w, k) for k in keys)))


def inputs(fn: Callable[..., Any], cfg: Mapping[str, Any],
           *keys: str) -> Callable[[Any], list[str]]:
    """The same map flattened: the job's declared inputs."""
    return lambda w: P.flat(fn(cfg, *(getattr(w, k) for k in keys)))


def out_dir(key: str) -> Callable[..., str]:
    """The folder of output ``key`` (derived from the rule's own outputs)."""
    return lambda wildcards, output: str(Path(getattr(output, key)).parent)


def all_outputs(rules: Any, cfg: Mapping[str, Any]) -> list[str]:
    """Every output of every job (``params.job_wildcards``), from the rules' own output
    patterns: the default target."""
    out: list[str] = []
    for rule, jobs in P.job_wildcards(cfg).items():
        patterns = [str(o) for o in getattr(rules, rule).output]
        out += [p.format(**wildcards) for wildcards in jobs for p in patterns]
    return out
