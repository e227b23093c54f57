"""Load and validate config.yaml against the workflow's JSON schema.

Shared by the Snakefile (before any job), the CLI and the tests, so a wrong key, type or value is
reported the same way everywhere: one line per problem naming the key, the value and the fix.
Defaults declared in the schema are filled in, as ``snakemake.utils.validate`` does.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema import Draft202012Validator, validators

from .errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


def load_schema(path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _with_defaults(cls: type[jsonschema.protocols.Validator]) -> type:
    # The recipe of the jsonschema FAQ (the one snakemake.utils.validate uses): fill in defaults
    # while validating, so nested sections with `default: {}` get their own defaults too.
    validate_properties = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # type: ignore[no-untyped-def]
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(cls, {"properties": set_defaults})


def _key(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        # The offending key is not in the path; name it.
        extra = [k for k in error.instance if k not in error.schema.get("properties", {})]
        path = ".".join(filter(None, [path, ",".join(map(str, extra))]))
    return path or "(top level)"


def _hint(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"unknown key; allowed keys here: {allowed}"
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {error.validator_value}"
    if error.validator == "type":
        return f"{error.instance!r} should be of type {error.validator_value}"
    return error.message


def config_errors(cfg: dict[str, Any], schema: dict[str, Any] | None = None) -> list[str]:
    """Every problem in ``cfg`` as 'key: problem' lines (empty when valid). Fills defaults."""
    schema = load_schema() if schema is None else schema
    validator = _with_defaults(Draft202012Validator)(schema)
    problems = [
        f"{_key(e)}: {_hint(e)}"
        for e in sorted(validator.iter_errors(cfg), key=lambda e: list(map(str, e.path)))
    ]
    syn = cfg.get("synthetic", {})
    if isinstance(syn, dict) and isinstance(syn.get("presets"), dict):
        if syn.get("preset") not in syn["presets"]:
            problems.append(
                f"synthetic.preset: {syn.get('preset')!r} is not one of the presets defined "
                f"under synthetic.presets ({', '.join(syn['presets'])})"
            )
    sets = (cfg.get("frames") or {}).get("sets") or {}
    if isinstance(sets, dict) and sets:
        aligned = (cfg.get("audio") or {}).get("aligned_frame_set")
        if aligned is not None and aligned not in sets:
            problems.append(f"audio.aligned_frame_set: {aligned!r} is not a key of frames.sets "
                            f"({', '.join(sets)})")
        for name, model in ((cfg.get("train") or {}).get("models") or {}).items():
            fs = model.get("frame_set") if isinstance(model, dict) else None
            if fs is not None and fs not in sets:
                problems.append(f"train.models.{name}.frame_set: {fs!r} is not a key of "
                                f"frames.sets ({', '.join(sets)})")
    fusion = cfg.get("fusion") or {}
    trained = set((cfg.get("train") or {}).get("models") or {})
    if isinstance(fusion, dict):
        video = fusion.get("video_model")
        early = [m for m in (fusion.get("models") or {}) if not m.startswith("late")]
        if early and video is not None and video not in trained:
            problems.append(f"fusion.video_model: {video!r} must also be in train.models")
        for name, spec in (fusion.get("models") or {}).items():
            for stream in ("visual", "audio"):
                ref = spec.get(stream) if isinstance(spec, dict) else None
                if name.startswith("late") and ref not in trained:
                    problems.append(f"fusion.models.{name}.{stream}: {ref!r} must name a model "
                                    f"in train.models ({', '.join(sorted(trained))})")
        single = fusion.get("single_task")
        if single is not None and single not in early:
            problems.append(f"fusion.single_task: {single!r} must be an early-fusion model "
                            f"in fusion.models ({', '.join(early)})")
    return problems


def validate_config(cfg: dict[str, Any], source: str = "config.yaml") -> dict[str, Any]:
    """Return ``cfg`` with defaults filled in, or raise ConfigError listing every problem."""
    problems = config_errors(cfg)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(
            f"{source} is invalid:\n{lines}\n"
            f"Fix these keys (the schema with every allowed value and default is {SCHEMA_PATH})."
        )
    return cfg


def load_config(path: str | Path = "config.yaml") -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            cfg = yaml.safe_load(fh) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file; run from the repository root.") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values.")
    return validate_config(cfg, source=str(path))


def config_hash(section: Any) -> str:
    """Stable short hash of a (part of a) config: recorded in checkpoints and the report."""
    blob = json.dumps(section, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
