"""Build the write-up from pipeline output files only (no number is typed in by hand).

Sections: where the numbers come from (banner), method (dev-only selection, CIs), data, data
quality, visual, audio, fusion, ablations, baselines and quoted reference numbers, per-class
results, provenance. Every file comes from the ``inputs`` mapping the rule gives (``inputs``
module docstring); a group with no configured model says "Not configured".
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import atomic_path, write_text
from ..errors import DataStageError
from ..evaluation import sensitivity
from ..evaluation.protocol import load as load_protocol
from ..labels import SPLITS
from ..manifest import read_manifest
from . import (
    browser,
    diagnosis,
    examples,
    figures,
    findings,
    provenance,
    reference,
    sections,
    summary,
    tables,
)
from . import flags as flag_notes
from .findings import Data
from .inputs import PathLike, ReportInputs, ReportModels, check_keys, load_inputs
from .render import Figure, Section, Table, to_html, to_markdown


def title(data: Data) -> str:
    """The report's title names its data; only a run on MELD is a reproduction report."""
    if data.kind == findings.SYNTHETIC:
        return (
            "Audio-visual emotion recognition: pipeline mechanism check on the synthetic "
            "demo corpus"
        )
    if data.kind == findings.MELD:
        return "Audio-visual emotion recognition on MELD: reproduction report"
    return f"Audio-visual emotion recognition: report on {data.name}"


def _sizes(n: Mapping[str, int]) -> str:
    return " / ".join(f"{int(n[s]):,}" for s in SPLITS)


def _banner(description: dict[str, Any], data: Data, meld_sizes: Mapping[str, int]) -> list[str]:
    if data.kind == findings.SYNTHETIC:
        out = [
            f"**Every number in this report comes from the SYNTHETIC demo corpus** "
            f"(preset `{description.get('preset')}`, seed {description.get('seed')}), "
            f"not from real MELD. It shows the pipeline works; it says nothing about MELD."
        ]
    elif data.kind == findings.MELD:
        out = [
            f"**Numbers computed on the real MELD corpus** (from `{description.get('root')}`; "
            f"train / dev / test utterances {_sizes(data.n)}; the label rows are those of MELD's "
            f"published label files, and {data.available:,} of its {data.published:,} clips "
            "are on disk)."
        ]
    elif data.kind == findings.MELD_LABELS:
        out = [
            f"**Numbers computed on {data.name}** (from `{description.get('root')}`; train / "
            f"dev / test utterances {_sizes(data.n)}): MELD's own label files, but most of "
            "its clips are missing, so this is NOT the MELD corpus. Findings here are not "
            "evidence about MELD."
        ]
    else:
        out = [
            f"**Numbers computed on {data.name}** (from `{description.get('root')}`; train / "
            f"dev / test utterances {_sizes(data.n)}): its label rows are not those of MELD's "
            f"published label files, so this is NOT the MELD corpus (MELD: "
            f"{_sizes(meld_sizes)}). Findings here are not evidence about MELD."
        ]
    if data.test_too_small:
        out.append(
            f"**WARNING: the test split has only {data.n.get('test', 0)} utterance(s) (fewer "
            f"than {findings.MIN_TEST_UTTERANCES}): the numbers below support no statistics. "
            "Intervals and p-values are shown only to check the mechanism; no difference is "
            "a finding.**"
        )
    return out


def read_manifests(
    manifest_files: Mapping[str, PathLike | pd.DataFrame],
) -> dict[str, pd.DataFrame]:
    """Each split's manifest (read from its file unless already a DataFrame)."""
    lacking = [s for s in SPLITS if s not in manifest_files]
    if lacking:
        raise DataStageError(f"no manifest given to the report for split(s) {lacking}")
    return {
        s: m if isinstance(m, pd.DataFrame) else read_manifest(m)
        for s, m in ((s, manifest_files[s]) for s in SPLITS)
    }


def data_section(
    manifest_files: Mapping[str, PathLike | pd.DataFrame],
    fig_dir: Path,
    data: Data | None = None,
    flags: pd.DataFrame | None = None,
) -> Section:
    manifests = read_manifests(manifest_files)
    flags = flags if flags is not None else pd.DataFrame(columns=flag_notes.FLAG_COLUMNS)
    emo = tables.class_counts(manifests, "emotion")
    sent = tables.class_counts(manifests, "sentiment")
    label = data.label if data else ""
    figures.class_distribution(emo, "emotion", fig_dir / "emotion_distribution.png", data=label)
    n = {s: len(manifests[s]) for s in SPLITS}
    where = f" ({data.name})" if data else ""
    return Section(
        "1. Data",
        paragraphs=[
            *flag_notes.flag_lines(flags),  # first: what was skipped and why
            f"Utterances per split{where}: " + ", ".join(f"{s} {n[s]}" for s in SPLITS) + "."
        ],
        tables=[
            Table("flags", "What was skipped and why", flags),
            Table("emotion_counts", "Emotion labels per split", emo),
            Table("sentiment_counts", "Sentiment labels per split", sent),
            Table("durations", "Clip durations (container, seconds)", tables.durations(manifests)),
        ],
        figures=[
            Figure(
                fig_dir / "emotion_distribution.png",
                "Emotion label distribution per split (the imbalance)",
            )
        ],
    )


def qc_section(manifest_qc: PathLike, qc_clips: PathLike) -> Section:
    summary = tables.qc_summary([Path(manifest_qc)])
    qc = pd.read_csv(qc_clips)
    usable = (
        qc.groupby("split", sort=False)
        .agg(
            utterances=("clip_name", "count"),
            manifest_ok=("decoded_ok", "sum"),
            frames_ok=("frames_ok", "sum"),
            audio_ok=("audio_ok", "sum"),
            frames_total=("n_frames", "sum"),
            mean_face_ratio=("face_ratio", "mean"),
        )
        .reset_index()
    )
    return Section(
        "2. Data quality",
        paragraphs=[
            "Clips that are missing, unreadable, empty, or outside the configured duration limits "
            "stay in the manifest as flagged rows and are excluded downstream; clips without "
            "usable audio keep their video and get masked audio features. Per-clip details: "
            "`qc/clips.csv`."
        ],
        tables=[
            Table("qc_usable", "Clips usable by each data stage", usable),
            Table("qc_problems", "Problems found (manifest stage)", summary),
        ],
    )


def provenance_section(
    benchmarks: PathLike, description: dict[str, Any], config_hash: str,
    summary_files: Mapping[str, Mapping[Any, Any]] | None = None,
) -> Section:
    data = ", ".join(f"{k}={v}" for k, v in description.items())
    times = provenance.stage_times(Path(benchmarks))
    runs = provenance.read_summaries(summary_files)  # where training ran, not this job
    return Section(
        "Provenance",
        paragraphs=[
            f"Dataset: {data}. Config hash: `{config_hash}`. Code: `{provenance.git_commit()}`.",
            f"Training hardware (from the training summaries): "
            f"{provenance.training_hardware(runs)}. Report built on {provenance.hardware()}.",
            *provenance.nondeterminism_notes(runs),
        ],
        tables=[
            Table("packages", "Package versions", provenance.package_versions()),
            Table(
                "stage_totals",
                "Wall time per stage (sum over its jobs)",
                provenance.stage_totals(times),
            ),
            Table("stage_times", "Wall time per job (Snakemake benchmark files)", times),
        ],
    )


def _examples_section(inputs: Mapping[str, Any], manifests: Mapping[str, pd.DataFrame],
                      tab_dir: Path, inp: ReportInputs, data: Data,
                      browser_spec: dict[str, Any] | None) -> Section:
    """Write ``tables/predictions.{parquet,csv}`` and return the error browser's section."""
    # The report's model order (the rule's JSON arrives with sorted keys).
    given = inputs["predictions"]
    order = [m for m in inp.models.all if m in given] + [m for m in given
                                                          if m not in inp.models.all]
    table = examples.predictions_table({m: given[m] for m in order}, manifests,
                                       pd.read_csv(inputs["qc"]))
    for suffix, write in ((".parquet", lambda df, p: df.to_parquet(p, index=False)),
                          (".csv", lambda df, p: df.to_csv(p, index=False))):
        with atomic_path(tab_dir / f"predictions{suffix}") as tmp:
            write(table.assign(dataset=data.label), tmp)
    best = {g: (inp.best.get(g) or {}).get("model") for g in ("single_stream", "fusion")}
    return browser.browser_section(table, manifests, inputs["frames"],
                                   browser.BrowserSpec.from_params(browser_spec), best,
                                   "Error browser")


def build_report(
    inputs: Mapping[str, Any],
    out_dir: PathLike,
    description: dict[str, Any],
    config_hash: str = "",
    groups: dict[str, list[str]] | None = None,
    single_task: list[str] | None = None,
    baselines: list[str] | None = None,
    compare: bool = False,
    reference_file: str | Path | None = None,
    ablations: list[str] | None = None,
    min_utterances: int = findings.MIN_TEST_UTTERANCES,
    browser_spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Stage: write ``out_dir/report.md``, self-contained ``report.html``, ``tables/*.csv`` and
    ``figures/*.png`` from the files in ``inputs`` (exactly ``inputs.INPUT_KEYS``: manifests,
    manifest_qc, qc, metrics, compare, summaries, training_logs, benchmarks; see ``inputs``).

    ``description``: ``params.dataset_description`` (the banner); ``groups``: ``{"visual",
    "audio", "fusion": [model names]}`` as configured (missing/empty = not configured);
    ``single_task``: fusion models that also have a ``<model>@single_task`` run; ``ablations``:
    fusion models with ``metrics/<model>@no_audio.json`` and ``@no_video.json``; ``baselines``:
    default majority + prior; ``compare``: paired tests are configured, so
    ``metrics/compare.json`` must exist; ``reference_file``: the quoted numbers (default: the
    packaged ``avemo/data/reference_numbers.yaml``). A configured model without a metrics file
    in ``inputs`` raises DataStageError naming the model (a given file that is missing: naming
    the file). Returns ``{sections, tables, figures}`` (names).
    """
    check_keys(inputs)
    out_dir = Path(out_dir)
    fig_dir, tab_dir = out_dir / "figures", out_dir / "tables"
    fig_dir.mkdir(parents=True, exist_ok=True)
    tab_dir.mkdir(parents=True, exist_ok=True)
    models = ReportModels.from_params(groups, single_task, baselines, ablations)
    inp = load_inputs(inputs, models, compare)
    ref = reference.load_reference(reference_file)
    manifests = read_manifests(inputs["manifests"])
    meld_sizes = reference.meld_split_sizes(ref)
    data = findings.identify(description, manifests, min_utterances)
    proto = load_protocol(inputs["protocol"])
    planted = sensitivity.load(inputs.get("planted"))
    sections_ = [
        Section("About these numbers", paragraphs=_banner(description, data, meld_sizes)),
        sections.method_section(inp),
    ]
    sections_ += [
        data_section(manifests, fig_dir, data, flag_notes.flags_table(
            flag_notes.stage_flags(inputs.get("flags") or []),
            flag_notes.data_flags(manifests, data.min_utterances))),
        qc_section(inputs["manifest_qc"], inputs["qc"]),
        sections.visual_section(inp, fig_dir, ref, data),
        sections.audio_section(inp, fig_dir, data),
        sections.fusion_section(inp, fig_dir, data),
        *filter(None, [diagnosis.diagnosis_section(
            inp, fig_dir, ref, data, proto, planted)]),
        *sections.ablation_sections(inp),
        sections.baselines_section(inp, ref, description, data),
        sections.per_class_section(inp, fig_dir, data),
        _examples_section(inputs, manifests, tab_dir, inp, data, browser_spec),
        provenance_section(inputs["benchmarks"], description, config_hash, inputs["summaries"]),
    ]
    sections.add_speech(sections_, inputs["speech"], data)  # into "1. Data"
    # The answer first: the summary opens the report and links down to every section.
    top = summary.summary_section(inp, data, proto, small=data.test_too_small, planted=planted)
    summary.add_links(top, sections_)
    sections_.insert(0, top)
    for section in sections_:
        for t in section.tables:
            # Every table CSV names the data its numbers come from.
            df = t.df.assign(dataset=t.dataset or data.label)
            with atomic_path(tab_dir / f"{t.name}.csv") as tmp:
                df.to_csv(tmp, index=False)
        for f in section.figures:
            f.caption = f"{f.caption} — data: {data.label}"
    heading = title(data)
    write_text(out_dir / "report.html", to_html(heading, sections_))
    write_text(out_dir / "report.md", to_markdown(heading, sections_, rel_to=out_dir))
    return {
        "sections": [s.title for s in sections_],
        "tables": [t.name for s in sections_ for t in s.tables],
        "figures": [f.path.name for s in sections_ for f in s.figures],
    }
