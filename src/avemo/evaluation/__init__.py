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
    paired_bootstrap_test,
    seed_summary,
)
from avemo.evaluation.evaluate import compare_models, evaluate_model
from avemo.evaluation.metrics import (
    prediction_metrics,
    read_predictions,
    task_metrics,
)

__all__ = [
    "bootstrap_ci",
    "bootstrap_samples",
    "compare_models",
    "evaluate_model",
    "expected_baseline_metrics",
    "label_prior",
    "majority_predictions",
    "paired_bootstrap_test",
    "prediction_metrics",
    "prior_predictions",
    "read_predictions",
    "seed_summary",
    "task_metrics",
    "write_baseline_predictions",
]
