"""Audio-visual fusion: the study's misaligned concatenation and the fixes it named.

Early fusion (trained by the one engine): ``concat_misaligned``, ``concat_aligned``,
``cross_attention``, ``gated`` (``avemo.fusion.models``, datasets from ``avemo.fusion.inputs``,
stage ``avemo.fusion.stage.train_fusion``). Late fusion of two streams' predictions:
``avemo.fusion.late.late_fusion`` (``weighted`` | ``stacking``).

Every name is imported lazily (PEP 562): the model registry may import
``avemo.fusion.models`` and the stage imports the registry, and a fusion job must not pay for
late fusion's scikit-learn (about 0.9 s of start-up in every one of the demo's fusion jobs).
The package's own code imports from the submodules, so ``avemo.codedeps`` (which reads static
imports) sees what each job runs.
"""

from __future__ import annotations

from avemo.lazy import lazy_names

_WHERE = {
    "ConcatAligned": "models",
    "ConcatMisaligned": "models",
    "CrossAttention": "models",
    "Gated": "models",
    "FusionDataset": "inputs",
    "build_fusion_dataset": "inputs",
    "late_fusion": "late",
    "train_fusion": "stage",
    "build_fusion_model": "stage",
}
__all__, __getattr__ = lazy_names(__name__, _WHERE)
