"""Evaluation: metrics, bootstrap uncertainty, trivial baselines, the metrics JSON stage.

Every name is imported lazily (PEP 562), as in ``avemo.fusion``: the workflow imports
``avemo.evaluation.refs`` (model and reference names) to list each rule's inputs, and an eager
package would import scikit-learn and SciPy's statistics into every Snakemake start (about
1.5 s of each DVC stage and SLURM job). The package's own code imports from the submodules, so
``avemo.codedeps`` (which reads static imports) sees what each job runs.
"""

from __future__ import annotations

from avemo.lazy import lazy_names

_WHERE = {
    "expected_baseline_metrics": "baselines",
    "label_prior": "baselines",
    "majority_predictions": "baselines",
    "prior_predictions": "baselines",
    "write_baseline_predictions": "baselines",
    "bootstrap_ci": "bootstrap",
    "bootstrap_samples": "bootstrap",
    "cluster_bootstrap": "bootstrap",
    "dialogue_ids": "bootstrap",
    "holm": "bootstrap",
    "paired_bootstrap_test": "bootstrap",
    "seed_summary": "bootstrap",
    "audio_subsets": "compare",
    "compare_pairs": "compare",
    "select_best": "compare",
    "default_pairs": "refs",
    "default_primary": "refs",
    "variant_name": "refs",
    "compare_models": "evaluate",
    "evaluate_model": "evaluate",
    "prediction_metrics": "metrics",
    "read_predictions": "metrics",
    "task_metrics": "metrics",
}
__all__, __getattr__ = lazy_names(__name__, _WHERE)
