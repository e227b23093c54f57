"""Evaluation: metrics, bootstrap uncertainty, trivial baselines, the metrics JSON stage."""

from avemo.evaluation.baselines import (
    expected_baseline_metrics,
    label_prior,
    majority_predictions,
    prior_predictions,
    write_baseline_predictions,
)
from avemo.evaluation.bootstrap import (
    bootstrap_ci,
    bootstrap_samples,
    cluster_bootstrap,
    dialogue_ids,
    holm,
    paired_bootstrap_test,
    seed_summary,
)
from avemo.evaluation.compare import (
    audio_subsets,
    compare_pairs,
    default_pairs,
    default_primary,
    select_best,
    variant_name,
)
from avemo.evaluation.evaluate import compare_models, evaluate_model
from avemo.evaluation.metrics import (
    prediction_metrics,
    read_predictions,
    task_metrics,
)

__all__ = [
    "audio_subsets",
    "bootstrap_ci",
    "bootstrap_samples",
    "cluster_bootstrap",
    "compare_models",
    "compare_pairs",
    "default_pairs",
    "default_primary",
    "dialogue_ids",
    "evaluate_model",
    "expected_baseline_metrics",
    "holm",
    "label_prior",
    "majority_predictions",
    "paired_bootstrap_test",
    "prediction_metrics",
    "prior_predictions",
    "read_predictions",
    "seed_summary",
    "select_best",
    "task_metrics",
    "variant_name",
    "write_baseline_predictions",
]
