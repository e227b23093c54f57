# Fusion: the study's misaligned concatenation and the fixes (aligned, cross-attention, gated,
# late), one job per model and seed, on the per-stream models' exported embeddings/predictions.


rule crossfit:
    # Out-of-fold train embeddings of the video model (cross-fitted early-fusion runs).
    conda:
        "../../envs/train.yaml"
    input:
        inputs(P.crossfit_inputs, config, "model", "seed"),
    output:
        **P.crossfit_outputs(config),
    wildcard_constraints:
        model="|".join(P.cross_fitted(config)) or "^$",
    params:
        code=code("crossfit"),
        p=job_params("crossfit", config),
        hash=hashed("crossfit", "crossfit", config),
        inputs=paths_json(P.crossfit_inputs, config, "model", "seed"),
        out_dir=out_dir("summary"),
    # One core: the engine's torch threads are train.engine.cpu_threads (fixed for
    # reproducibility) and CPU training loads data in the main process; two such jobs then
    # run side by side on two cores. GPU clusters set more (profiles/slurm: data workers).
    threads: 1
    log:
        L.log("crossfit_{model}_seed{seed}"),
    benchmark:
        L.benchmark("crossfit_{model}_seed{seed}")
    shell:
        "avemo crossfit --model {wildcards.model} --seed {wildcards.seed} --out {params.out_dir:q}"
        " --config-hash {params.hash} --workers {threads} --inputs {params.inputs:q}"
        " --params {params.p:q} > {log:q} 2>&1"


rule fusion:
    conda:
        "../../envs/train.yaml"
    input:
        inputs(P.fusion_inputs, config, "model", "seed"),
    output:
        **P.fusion_outputs(config),
        # Checkpoints are updated in place: Snakemake keeps them before a rerun (a killed job
        # resumes from last.pt) and DVC versions them with the rest of the run.
        best=update(L.checkpoint("{model}", "{seed}", "best", "fusion")),
        last=update(L.checkpoint("{model}", "{seed}", "last", "fusion")),
    wildcard_constraints:
        model="|".join(re.escape(m) for m in P.fusion_runs(config)) or "^$",
    params:
        code=code("fusion"),
        p=job_params("fusion", config),
        hash=hashed("fusion", "fusion", config),
        inputs=paths_json(P.fusion_inputs, config, "model", "seed"),
        out_dir=out_dir("summary"),
    # One core: the engine's torch threads are train.engine.cpu_threads (fixed for
    # reproducibility) and CPU training loads data in the main process; two such jobs then
    # run side by side on two cores. GPU clusters set more (profiles/slurm: data workers).
    threads: 1
    log:
        L.log("fusion_{model}_seed{seed}"),
    benchmark:
        L.benchmark("fusion_{model}_seed{seed}")
    shell:
        "avemo fusion --model {wildcards.model:q} --seed {wildcards.seed} --out {params.out_dir:q}"
        " --config-hash {params.hash} --workers {threads} --inputs {params.inputs:q}"
        " --params {params.p:q} > {log:q} 2>&1"


rule late_fusion:
    conda:
        "../../envs/train.yaml"
    input:
        inputs(P.late_inputs, config, "model", "seed"),
    output:
        **P.late_outputs(config),
    wildcard_constraints:
        model="|".join(P.configured(config, "late_fusion")) or "^$",
    params:
        code=code("late"),
        p=job_params("late_fusion", config),
        inputs=paths_json(P.late_inputs, config, "model", "seed"),
        out_dir=out_dir("late"),
    log:
        L.log("late_fusion_{model}_seed{seed}"),
    benchmark:
        L.benchmark("late_fusion_{model}_seed{seed}")
    shell:
        "avemo late --seed {wildcards.seed} --out {params.out_dir:q} --inputs {params.inputs:q}"
        " --params {params.p:q} > {log:q} 2>&1"


rule evaluate_ablation:
    conda:
        "../../envs/report.yaml"
    input:
        inputs(P.evaluate_inputs, config, "name"),
    output:
        L.metrics("{name}"),
    wildcard_constraints:
        name="|".join(
            re.escape(registry.variant(m, a)) for m in P.ablated(config) for a in registry.ABLATIONS
        ) or "^$",
    params:
        code=code("evaluate"),
        p=job_params("evaluate_ablation", config),
        preds=paths_json(P.evaluate_inputs, config, "name"),
    log:
        L.log("evaluate_{name}"),
    benchmark:
        L.benchmark("evaluate_{name}")
    shell:
        "avemo evaluate --model {wildcards.name} --out {output:q} --params {params.p:q}"
        " --predictions {params.preds:q} > {log:q} 2>&1"
