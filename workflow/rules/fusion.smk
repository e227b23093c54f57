# Fusion: the study's misaligned concatenation and the fixes (aligned, cross-attention, gated,
# late), one job per model and seed, on the per-stream models' exported embeddings/predictions.

FUSION = P.fusion_models(config)
EARLY = [m for m in FUSION if not m.startswith("late")]
LATE = [m for m in FUSION if m.startswith("late")]


rule fusion:
    conda:
        "../../envs/train.yaml"
    input:
        lambda w: P.fusion_deps(config, w.model, int(w.seed)),
    output:
        dev=f"{R}/fusion/{{model}}/seed{{seed}}/predictions_dev.parquet",
        test=f"{R}/fusion/{{model}}/seed{{seed}}/predictions_test.parquet",
        no_audio=f"{R}/fusion/{{model}}/seed{{seed}}/predictions_test_no_audio.parquet",
        no_video=f"{R}/fusion/{{model}}/seed{{seed}}/predictions_test_no_video.parquet",
        summary=f"{R}/fusion/{{model}}/seed{{seed}}/summary.json",
    wildcard_constraints:
        model="|".join(EARLY) if EARLY else "^$",
    params:
        code=P.code_hash("fusion"),
        p=lambda w: as_json(P.fusion(config, w.model)),
        # Checkpoints resume only under the same params *and* code: a rerun caused by a code
        # change must not pick up a model trained by the old code.
        hash=lambda w: config_hash([P.fusion(config, w.model), P.code_hash("fusion")]),
        inputs=lambda w: as_json(P.fusion_inputs(config, w.model, int(w.seed))),
        out_dir=parent("summary"),
    threads: 2
    log:
        f"{LOGS}/fusion_{{model}}_seed{{seed}}.log",
    benchmark:
        f"{BENCH}/fusion_{{model}}_seed{{seed}}.tsv"
    shell:
        "avemo fusion --model {wildcards.model:q} --seed {wildcards.seed} --out {params.out_dir:q}"
        " --config-hash {params.hash} --workers {threads} --inputs {params.inputs:q}"
        " --params {params.p:q}"
        " > {log:q} 2>&1"


rule late_fusion:
    conda:
        "../../envs/train.yaml"
    input:
        lambda w: P.flat(P.late_inputs(config, w.model, int(w.seed))),
    output:
        dev=f"{R}/fusion/{{model}}/seed{{seed}}/predictions_dev.parquet",
        test=f"{R}/fusion/{{model}}/seed{{seed}}/predictions_test.parquet",
    wildcard_constraints:
        model="|".join(LATE) if LATE else "^$",
    params:
        code=P.code_hash("late_fusion"),
        method=lambda w: "stacking" if w.model == "late_stacking" else "weighted",
        inputs=lambda w: as_json(P.late_inputs(config, w.model, int(w.seed))),
        out_dir=parent("dev"),
    log:
        f"{LOGS}/late_fusion_{{model}}_seed{{seed}}.log",
    benchmark:
        f"{BENCH}/late_fusion_{{model}}_seed{{seed}}.tsv"
    shell:
        "avemo late --method {params.method} --seed {wildcards.seed} --out {params.out_dir:q}"
        " --inputs {params.inputs:q} > {log:q} 2>&1"


rule evaluate_ablation:
    conda:
        "../../envs/report.yaml"
    input:
        lambda w: expand(
            f"{R}/fusion/{w.model}/seed{{seed}}/predictions_test_{w.ablation}.parquet", seed=SEEDS
        ),
    output:
        f"{R}/metrics/{{model}}@{{ablation}}.json",
    wildcard_constraints:
        model="|".join(EARLY) if EARLY else "^$",
        ablation="|".join(P.ABLATIONS),
    params:
        code=P.code_hash("evaluate_ablation"),
        p=as_json(P.evaluation(config)),
    log:
        f"{LOGS}/evaluate_{{model}}@{{ablation}}.log",
    benchmark:
        f"{BENCH}/evaluate_{{model}}@{{ablation}}.tsv"
    shell:
        "avemo evaluate --model {wildcards.model}@{wildcards.ablation} --out {output:q}"
        " --params {params.p:q} {input:q} > {log:q} 2>&1"
