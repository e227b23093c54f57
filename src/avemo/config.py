"""Load and validate config.yaml against the workflow's JSON schema.

Shared by the Snakefile (before any job), the CLI and the tests, so a wrong key, type or value is
reported the same way everywhere: one line per problem naming the file, the line, the key, the
value and the fix. A run may layer several files (``snakemake --configfile overlay.yaml``) and
``--config key=value`` over config.yaml; each layer is a ConfigSource, so a problem is reported in
the file that set the key. Defaults declared in the schema are filled in, as
``snakemake.utils.validate`` does.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema import Draft202012Validator, validators

from .errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
# libyaml's parser when PyYAML has it (its wheels do): the same safe documents, nodes and marks
# as yaml.SafeLoader, parsed about 10x faster (0.5 s of every Snakemake start went to YAML).
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

KeyPath = tuple[str, ...]


@dataclass
class ConfigSource:
    """One layer of the configuration: a file (with the line of each key) or ``--config``."""

    label: str  # as the user should read it: "config.yaml", "presets/meld.yaml", "--config"
    data: dict[str, Any]
    lines: dict[KeyPath, int | None] = field(default_factory=dict)


def load_schema(path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=YAML_LOADER)


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


def _partial(schema: Any) -> Any:
    """The schema for one layer on its own: no required keys.

    An overlay sets a few keys and inherits the rest, so only what it does say (types, values,
    unknown keys) can be checked before merging. (Defaults stay: only _with_defaults fills them.)
    """
    if isinstance(schema, dict):
        return {k: _partial(v) for k, v in schema.items() if k not in ("required", "minProperties")}
    if isinstance(schema, list):
        return [_partial(v) for v in schema]
    return schema


def _dotted(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _missing_key(error: jsonschema.ValidationError) -> str:
    names = [k for k in error.validator_value if repr(k) in error.message]
    return str(names[0]) if names else "?"


# JSON-schema types in the words of a YAML file.
_YAML_KIND = {"object": "a mapping (indented `key: value` lines)", "array": "a list",
              "string": "a string", "integer": "an integer", "number": "a number",
              "boolean": "true or false", "null": "null"}


def _hint(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"unknown key; allowed keys here: {allowed}"
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {error.validator_value}"
    if error.validator == "type":
        kinds = error.validator_value if isinstance(error.validator_value, list) else [
            error.validator_value]
        want = " or ".join(_YAML_KIND.get(k, k) for k in kinds)
        return f"value {error.instance!r} should be {want}"
    if error.validator == "required":
        missing = _missing_key(error)
        inst = error.instance
        if isinstance(inst, dict) and inst.get("policy") == missing:
            return f"missing: policy {missing!r} needs it; add `{missing}: <value>`"
        return "missing; add this key (it is required here)"
    if error.validator == "minLength" and error.instance == "":
        default = error.schema.get("default")
        return "empty; give a value" + (f" (default: {default!r})" if default else "")
    return error.message


def _schema_errors(validator: jsonschema.protocols.Validator, cfg: Any) -> list[str]:
    """'key: problem' lines, one per unknown or missing key, sorted by key."""
    problems: list[tuple[list[str], str]] = []
    for e in validator.iter_errors(cfg):
        path = [str(p) for p in e.absolute_path]
        if e.validator == "additionalProperties" and isinstance(e.instance, dict):
            # The offending keys are not in the path; one line each, named.
            known = e.schema.get("properties", {})
            for extra in (k for k in e.instance if k not in known):
                problems.append(([*path, str(extra)], _hint(e)))
        elif e.validator == "required":
            problems.append(([*path, _missing_key(e)], _hint(e)))
        else:
            problems.append((path, _hint(e)))
    return [f"{_dotted(p)}: {text}" for p, text in sorted(problems, key=lambda x: x[0])]


def config_errors(cfg: dict[str, Any], schema: dict[str, Any] | None = None) -> list[str]:
    """Every problem in ``cfg`` as 'key: problem' lines (empty when valid). Fills defaults.

    Never raises on any YAML value: shapes are reported by the schema before the cross-checks
    below look inside sections.
    """
    schema = load_schema() if schema is None else schema
    validator = _with_defaults(Draft202012Validator)(schema)
    try:
        problems = _schema_errors(validator, cfg)
    except RecursionError:
        return ["(top level): a value refers to itself (a YAML alias inside its own anchor); "
                "write the values out"]
    problems += _range_errors(cfg)
    if problems or not isinstance(cfg, dict):
        # The cross-checks assume the shapes the schema guarantees (sections are mappings).
        return problems
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
    problems += _model_errors(cfg, set(sets))
    return problems


def _model_errors(cfg: dict[str, Any], frame_sets: set[str]) -> list[str]:
    """Model blocks checked against the registry: each name registered under the right
    section, what it reads configured, references to other models of the right kind."""
    from . import registry

    problems: list[str] = []
    train = (cfg.get("train") or {}).get("models") or {}
    fusion = cfg.get("fusion") or {}
    for section, models, kinds in (("train.models", train, registry.STREAM_KINDS),
                                   ("fusion.models", fusion.get("models") or {},
                                    registry.FUSION_KINDS)):
        for name, block in models.items():
            entry = registry.MODELS.get(name)
            if entry is None or entry.kind not in kinds:
                problems.append(f"{section}.{name}: not a registered {'/'.join(kinds)} model; "
                                f"registered: {', '.join(registry.names(kinds))} "
                                "(avemo/registry.py)")
                continue
            spec = {**entry.defaults, **(block or {})}
            if entry.kind == "visual" and spec.get("frame_set") not in frame_sets:
                problems.append(f"{section}.{name}.frame_set: {spec.get('frame_set')!r} is not "
                                f"a key of frames.sets ({', '.join(sorted(frame_sets))})")
            wrong = {"visual": "features", "audio": "frame_set"}.get(entry.kind)
            if wrong and wrong in (block or {}):
                problems.append(f"{section}.{name}.{wrong}: {name} is a {entry.kind} model; "
                                f"remove this key")
            for stream in ("visual", "audio") if entry.kind == "late_fusion" else ():
                ref = spec.get(stream)
                if ref not in train or registry.MODELS[ref].kind != stream:
                    problems.append(f"{section}.{name}.{stream}: {ref!r} must name a {stream} "
                                    f"model in train.models "
                                    f"({', '.join(registry.of_kind(train, stream))})")
    early = registry.of_kind(
        [m for m in fusion.get("models") or {} if m in registry.MODELS], "early_fusion")
    video = fusion.get("video_model")
    if early and (video not in train or not registry.MODELS[video].embeds_clips):
        ok = [m for m in registry.names(["visual"]) if registry.MODELS[m].embeds_clips]
        problems.append(f"fusion.video_model: {video!r} must be a model in train.models whose "
                        f"embeddings feed early fusion ({', '.join(ok)})")
    single = fusion.get("single_task")
    if single is not None and single not in early:
        problems.append(f"fusion.single_task: {single!r} must be an early-fusion model "
                        f"in fusion.models ({', '.join(early)})")
    return problems


def _range_errors(cfg: Any) -> list[str]:
    """Relations between keys that JSON schema cannot state."""
    manifest = cfg.get("manifest") if isinstance(cfg, dict) else None
    if not isinstance(manifest, dict):
        return []
    lo, hi = manifest.get("min_duration_s"), manifest.get("max_duration_s")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lo, hi))
    if numbers and lo > hi:
        return [f"manifest.min_duration_s: {lo} is greater than manifest.max_duration_s ({hi}), "
                f"so every clip would be excluded; make min_duration_s <= max_duration_s"]
    return []


def merge_sources(sources: Sequence[ConfigSource]) -> dict[str, Any]:
    """Layer the sources in order, as snakemake.utils.update_config does (mappings merge)."""

    def update(base: Any, extra: Mapping[str, Any]) -> dict[str, Any]:
        base = base if isinstance(base, dict) else {}
        for key, value in extra.items():
            base[key] = update(base.get(key), value) if isinstance(value, Mapping) else value
        return base

    merged: dict[str, Any] = {}
    for src in sources:
        update(merged, copy.deepcopy(src.data))
    return merged


def locate(key: str, sources: Sequence[ConfigSource]) -> str:
    """'file, line N' of the source that set ``key`` (dotted), or '' when only defaults did.

    The source defining the longest part of the key's path wins; among equals the last one,
    since later layers override earlier ones.
    """
    path = () if key == "(top level)" else tuple(key.split("."))
    best: tuple[int, ConfigSource, int | None] | None = None
    for src in sources:
        for n in range(len(path), 0, -1):
            if path[:n] in src.lines:
                if best is None or n >= best[0]:
                    best = (n, src, src.lines[path[:n]])
                break
    if best is None:
        return sources[0].label if len(sources) == 1 else ""
    _, src, line = best
    return src.label if line is None else f"{src.label}, line {line}"


def _placed(problem: str, sources: Sequence[ConfigSource]) -> str:
    where = locate(problem.split(": ", 1)[0], sources)
    return f"{where}: {problem}" if where else problem


def check_sources(sources: Sequence[ConfigSource], schema: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """The merged config with defaults, or ConfigError naming each problem's file and line.

    Each layer is checked on its own first (so `train: 5` in config.yaml is reported there even
    when an overlay replaces it), then the merged result (required keys, cross-references).
    """
    schema = load_schema() if schema is None else schema
    partial = Draft202012Validator(_partial(schema))
    problems: list[str] = []
    for src in sources:
        try:
            problems += [_placed(p, [src]) for p in _schema_errors(partial, src.data)]
        except RecursionError:
            problems.append(f"{src.label}: a value refers to itself (a YAML alias inside its "
                            f"own anchor); write the values out")
    merged: dict[str, Any] = {}
    if not problems:
        try:
            merged = merge_sources(sources)
        except RecursionError:
            problems.append(f"{' + '.join(s.label for s in sources)}: a value refers to itself "
                            f"(a YAML alias inside its own anchor); write the values out")
    if not problems:
        problems = [_placed(p, sources) for p in config_errors(merged, schema)]
    if problems:
        names = " + ".join(dict.fromkeys(s.label for s in sources)) or "the configuration"
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(
            f"{names} is invalid:\n{lines}\n"
            f"Fix each key where it is named (every allowed key, value and default: "
            f"{SCHEMA_PATH})."
        )
    return merged


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


def _key_lines(node: yaml.Node | None, prefix: KeyPath = (), seen: frozenset[int] = frozenset()
               ) -> dict[KeyPath, int | None]:
    """The 1-based line of every key path in a composed YAML document."""
    if node is None or id(node) in seen:  # an alias inside its own anchor: stop
        return {}
    seen = seen | {id(node)}
    lines: dict[KeyPath, int | None] = {}
    if isinstance(node, yaml.MappingNode):
        items = [(str(k.value), v, k) for k, v in node.value if isinstance(k, yaml.ScalarNode)]
    elif isinstance(node, yaml.SequenceNode):
        items = [(str(i), v, v) for i, v in enumerate(node.value)]
    else:
        return lines
    for name, value, at in items:
        lines[(*prefix, name)] = at.start_mark.line + 1
        lines.update(_key_lines(value, (*prefix, name), seen))
    return lines


def _yaml_problem(label: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{label}, line {mark.line + 1}, column {mark.column + 1}" if mark else label
    what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    cmark = getattr(exc, "context_mark", None)
    if context:
        other_line = cmark is not None and cmark.line != getattr(mark, "line", -1)
        at = f" at line {cmark.line + 1}" if other_line else ""
        what = f"{what} ({context}{at})"
    return (f"{where}: not valid YAML: {what}. Fix the syntax there: indent with spaces, never "
            f"tabs; close every [ {{ and quote; quote values that contain ': ' or ' #'.")


def read_source(path: str | Path, label: str | None = None) -> ConfigSource:
    """Read one config file (JSON or YAML, as Snakemake does) with the line of each key."""
    path = Path(path)
    label = label or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{label}: no such file; run from the repository root "
                          f"(or snakemake -d <folder holding it>) or give its path.") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{label}: is a folder; give the path of a YAML file.") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{label}: not UTF-8 text (byte {exc.start}); save it as UTF-8.") from exc
    except OSError as exc:
        raise ConfigError(f"{label}: cannot be read ({exc.strerror}); check its permissions."
                          ) from exc
    if text.lstrip().startswith("{"):
        try:  # Snakemake tries JSON first; JSON may use tabs, which YAML rejects
            data = json.loads(text)
        except ValueError:
            pass
        else:
            return _checked_top(ConfigSource(label, data), line=1)
    try:
        node, data = _parse_yaml(text, YAML_LOADER)
    except yaml.YAMLError:
        try:  # the pure-Python parser's messages name the offending character
            node, data = _parse_yaml(text, yaml.SafeLoader)
        except yaml.YAMLError as exc:
            raise ConfigError(_yaml_problem(label, exc)) from exc
    line = node.start_mark.line + 1 if node is not None else 1
    _no_duplicate_keys(node, label)
    return _checked_top(ConfigSource(label, {} if data is None else data, _key_lines(node)), line)


def _no_duplicate_keys(node: yaml.Node | None, label: str, prefix: KeyPath = (),
                       seen: frozenset[int] = frozenset()) -> None:
    """Raise ConfigError at the second of two equal keys in one mapping.

    YAML loaders keep the last value without a word, so a key written twice in an overlay
    silently undid the first; the user meant one of them.
    """
    if node is None or id(node) in seen:
        return
    seen = seen | {id(node)}
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                name, line = str(key.value), key.start_mark.line + 1
                if name in first:
                    raise ConfigError(
                        f"{label}, line {line}: {_dotted((*prefix, name))} is set twice (first "
                        f"on line {first[name]}); YAML would keep only the second, silently. "
                        f"Delete the line you do not mean.")
                first[name] = line
                _no_duplicate_keys(value, label, (*prefix, name), seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            _no_duplicate_keys(value, label, (*prefix, str(i)), seen)


def _parse_yaml(text: str, loader_cls: Any) -> tuple[yaml.Node | None, Any]:
    loader = loader_cls(text)
    try:
        node = loader.get_single_node()
        return node, loader.construct_document(node) if node is not None else {}
    finally:
        loader.dispose()


def _checked_top(src: ConfigSource, line: int) -> ConfigSource:
    if not isinstance(src.data, dict):
        raise ConfigError(
            f"{src.label}, line {line}: the top level must be a mapping of keys to values, not "
            f"a {type(src.data).__name__}; write one `key: value` per line from column 1 "
            f"(e.g. `results_dir: results`)."
        )
    return src


def load_config(path: str | Path = "config.yaml", *overlays: str | Path) -> dict[str, Any]:
    """Read, merge (overlays last, like snakemake --configfile) and validate config files."""
    return check_sources([read_source(p) for p in (path, *overlays)])


def config_hash(section: Any) -> str:
    """Stable short hash of a (part of a) config: recorded in checkpoints and the report."""
    blob = json.dumps(section, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
