"""The frozen diagnosis protocol (``workflow/protocol/diagnosis.yaml``): load, check, hash.

The protocol fixes, before any result is read, how the diagnosis decides: the factors and
levels, the effects estimated, the Holm family, alpha, the resamples, the equivalence margin,
the collapse rule and the verdict rule. ``Protocol.hash`` (the first 12 hex digits of the
sha256 of the file's bytes) is printed wherever a result made under it is shown, so a table is
only ever read against the protocol it was made under.

Torch-free and light: the workflow loads it at parse time.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from avemo.errors import ConfigError

PathLike = str | os.PathLike[str]
# Relative to the repository root (config key ``evaluation.protocol``, same default).
DEFAULT_PATH = "workflow/protocol/diagnosis.yaml"
VERDICTS: tuple[str, ...] = ("effect", "equivalent", "inconclusive")
# The smallest attainable Holm-adjusted p of a full family must stay this far below alpha.
MIN_P_HEADROOM = 20.0


@dataclass(frozen=True)
class Protocol:
    """The protocol's settings (the YAML file's keys) and its identity (``path``, ``hash``)."""

    path: str
    hash: str
    version: int
    endpoint: dict[str, str]
    factors: dict[str, tuple[str, ...]]
    design: str
    effects: tuple[str, ...]
    family: str
    alpha: float
    resamples: int
    resampling_seed: int
    paired_seeds: bool
    max_family: int
    intervals: tuple[str, ...]
    margin: float
    collapse_share: float
    collapse_split: str
    collapse_task: str
    verdicts: tuple[str, ...] = VERDICTS
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def min_p(self) -> float:
        """The smallest bootstrap p-value the resamples allow: ``2 / (B + 1)``."""
        return 2.0 / (self.resamples + 1.0)

    def check_family(self, m: int, where: str = "diagnosis family") -> None:
        """ConfigError when a Holm family of ``m`` tests is larger than the protocol allows
        (its smallest attainable adjusted p would not stay well below alpha)."""
        if m > self.max_family:
            raise ConfigError(
                f"{where}: {m} tests, but the protocol {self.path} (hash {self.hash}) allows "
                f"at most resampling.max_family = {self.max_family}; raise resampling.resamples "
                "and max_family together (a new protocol) or test fewer effects"
            )

    def summary(self) -> dict[str, Any]:
        """What a result file records about the protocol it was made under."""
        return {
            "hash": self.hash,
            "version": self.version,
            "alpha": self.alpha,
            "resamples": self.resamples,
            "margin": self.margin,
            "collapse_share": self.collapse_share,
            "design": self.design,
        }


def default_path() -> Path:
    """The repository's protocol file (next to the package in a checkout), else cwd-relative."""
    here = Path(__file__).resolve().parents[3] / DEFAULT_PATH
    return here if here.is_file() else Path(DEFAULT_PATH)


def file_hash(path: PathLike) -> str:
    """First 12 hex digits of the sha256 of the file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def _get(raw: dict[str, Any], path: Path, *keys: str) -> Any:
    node: Any = raw
    for i, k in enumerate(keys):
        if not isinstance(node, dict) or k not in node:
            raise ConfigError(f"protocol {path}: missing key {'.'.join(keys[: i + 1])}; "
                              f"restore it from {DEFAULT_PATH} in the repository")
        node = node[k]
    return node


def _number(raw: dict[str, Any], path: Path, *keys: str, low: float, high: float) -> float:
    v = _get(raw, path, *keys)
    if isinstance(v, bool) or not isinstance(v, int | float) or not low < float(v) < high:
        raise ConfigError(f"protocol {path}: {'.'.join(keys)} = {v!r}; use a number in "
                          f"({low:g}, {high:g})")
    return float(v)


def _whole(raw: dict[str, Any], path: Path, *keys: str) -> int:
    v = _get(raw, path, *keys)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"protocol {path}: {'.'.join(keys)} = {v!r}; use a whole number")
    return v


def _items(raw: dict[str, Any], path: Path, key: str, kind: type) -> Any:
    v = _get(raw, path, key)
    if not isinstance(v, kind):
        what = "a mapping of keys" if kind is dict else "a list"
        raise ConfigError(f"protocol {path}: {key} = {v!r}; use {what} (as in {DEFAULT_PATH})")
    return v


def load(path: PathLike | None = None) -> Protocol:
    """Read, check and hash the protocol file (``None``: the repository's ``DEFAULT_PATH``).

    ConfigError (what, which file and key, how to fix) when the file is absent, not YAML, lacks
    a key, has a value out of range, or names factors other than ``avemo.diagnosis.FACTORS``.
    """
    p = Path(path) if path is not None else default_path()
    if not p.is_file():
        raise ConfigError(f"diagnosis protocol {p} does not exist: set evaluation.protocol in "
                          f"config.yaml to the protocol file (default {DEFAULT_PATH})")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"protocol {p} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"protocol {p}: expected a mapping of keys, got {type(raw).__name__}")
    factors_raw = _get(raw, p, "factors")
    if not isinstance(factors_raw, dict):
        raise ConfigError(f"protocol {p}: factors must map each factor to its levels")
    factors = {str(f): tuple(str(x) for x in levels) for f, levels in factors_raw.items()}
    from avemo import diagnosis  # torch-free

    if factors != diagnosis.FACTORS:
        raise ConfigError(
            f"protocol {p}: factors {factors} differ from the code's avemo.diagnosis.FACTORS "
            f"{diagnosis.FACTORS}; a change of factors is a new protocol: edit both together"
        )
    alpha = _number(raw, p, "alpha", low=0.0, high=1.0)
    resamples = int(_number(raw, p, "resampling", "resamples", low=9, high=1e8))
    max_family = int(_number(raw, p, "resampling", "max_family", low=0, high=1e6))
    if max_family * 2.0 / (resamples + 1.0) > alpha / MIN_P_HEADROOM:
        raise ConfigError(
            f"protocol {p}: with resampling.resamples = {resamples} the smallest Holm-adjusted "
            f"p of {max_family} tests is {max_family * 2.0 / (resamples + 1.0):.4g}, above "
            f"alpha / {MIN_P_HEADROOM:g} = {alpha / MIN_P_HEADROOM:.4g}; raise resamples"
        )
    verdicts = tuple(str(v) for v in _items(raw, p, "verdicts", list))
    if verdicts != VERDICTS:
        raise ConfigError(f"protocol {p}: verdicts {list(verdicts)}; the code decides "
                          f"{list(VERDICTS)} (docs/diagnosis.md)")
    endpoint = {str(k): str(v) for k, v in _items(raw, p, "endpoint", dict).items()}
    design = str(_get(raw, p, "design"))
    if design != diagnosis.DESIGN:
        raise ConfigError(f"protocol {p}: design {design!r}; the code estimates the effects of "
                          f"design {diagnosis.DESIGN!r} (avemo.diagnosis): a change of design "
                          "is a new protocol, edit both together")
    effects = tuple(str(e) for e in _items(raw, p, "effects", list))
    kinds = tuple(dict.fromkeys(e.kind for e in diagnosis.effects()))
    if effects != kinds:
        raise ConfigError(f"protocol {p}: effects {list(effects)}; the design's effects are "
                          f"{list(kinds)} (avemo.diagnosis.effects)")
    return Protocol(
        path=str(p),
        hash=file_hash(p),
        version=_whole(raw, p, "version"),
        endpoint=endpoint,
        factors=factors,
        design=design,
        effects=effects,
        family=str(_get(raw, p, "family")),
        alpha=alpha,
        resamples=resamples,
        resampling_seed=_whole(raw, p, "resampling", "seed"),
        paired_seeds=bool(_get(raw, p, "resampling", "paired_seeds")),
        max_family=max_family,
        intervals=tuple(str(i) for i in _items(raw, p, "intervals", list)),
        margin=_number(raw, p, "equivalence_margin", low=0.0, high=1.0),
        collapse_share=_number(raw, p, "collapse", "share", low=0.0, high=1.0 + 1e-9),
        collapse_split=str(_get(raw, p, "collapse", "split")),
        collapse_task=str(_get(raw, p, "collapse", "task")),
        verdicts=verdicts,
        raw=raw,
    )
