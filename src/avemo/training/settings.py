"""The training engine's settings: one frozen dataclass, defaults from the config schema.

``$defs.engine_props`` in workflow/schemas/config.schema.yaml is the one definition of every
engine setting (name, allowed values, default); config.yaml's ``train.engine``, the per-model
and fusion overrides are validated against it. The defaults below are read from it at import,
and tests/unit/test_training.py checks that the fields are exactly the schema's properties, so
the schema, the config and the engine cannot disagree.

Kept free of torch so the CLI, the Snakefile and the tests can import it cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from avemo.config import SCHEMA_PATH, load_schema
from avemo.errors import ConfigError

ENGINE_PROPS: dict[str, dict[str, Any]] = load_schema()["$defs"]["engine_props"]
_DEFAULT: dict[str, Any] = {name: spec["default"] for name, spec in ENGINE_PROPS.items()}


@dataclass(frozen=True)
class EngineSettings:
    """How a model is trained (not which data or seed). Meanings: the schema's descriptions."""

    epochs: int = _DEFAULT["epochs"]
    batch_size: int = _DEFAULT["batch_size"]
    lr: float = _DEFAULT["lr"]
    weight_decay: float = _DEFAULT["weight_decay"]
    patience: int = _DEFAULT["patience"]
    w_emotion: float = _DEFAULT["w_emotion"]
    w_sentiment: float = _DEFAULT["w_sentiment"]
    imbalance: str = _DEFAULT["imbalance"]
    focal_gamma: float = _DEFAULT["focal_gamma"]
    scheduler: str = _DEFAULT["scheduler"]
    aggregate: str = _DEFAULT["aggregate"]
    device: str = _DEFAULT["device"]
    amp: bool = _DEFAULT["amp"]
    grad_clip: float = _DEFAULT["grad_clip"]
    cpu_threads: int = _DEFAULT["cpu_threads"]
    max_nonfinite_batches: int = _DEFAULT["max_nonfinite_batches"]

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str = "train.engine") -> EngineSettings:
        """Settings from a (partial) mapping such as a stage's ``engine`` param; keys it lacks
        take the schema default. An unknown key is a ConfigError naming it and ``where``."""
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise ConfigError(
                f"{where}: unknown engine setting(s) {', '.join(map(repr, unknown))}; allowed: "
                f"{', '.join(cls.names())} (defined in {SCHEMA_PATH}, $defs.engine_props)"
            )
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
