# Per-stream models (one job per model and seed) -> predictions, embeddings; baselines; metrics.
# Which models run, and which rule trains each, comes from the registry (avemo.registry).


wildcard_constraints:
    seed=r"\d+",


for _kind in registry.STREAM_KINDS:

    rule:
        name:
            f"train_{_kind}"
        conda:
            "../../envs/train.yaml"
        input:
            inputs(P.train_inputs, config, "model"),
        output:
            **P.train_outputs(config, _kind),
            # Checkpoints are updated in place: Snakemake keeps them before a rerun (a killed job
            # resumes from last.pt) and DVC versions them with the rest of the run.
            best=update(L.checkpoint("{model}", "{seed}", "best", "models")),
            last=update(L.checkpoint("{model}", "{seed}", "last", "models")),
        wildcard_constraints:
            model="|".join(P.configured(config, _kind)) or "^$",
        params:
            code=code("train"),
            p=job_params(f"train_{_kind}", config),
            hash=hashed(f"train_{_kind}", "train", config),
            inputs=paths_json(P.train_inputs, config, "model"),
            out_dir=out_dir("summary"),
        # One core: the engine's torch threads are train.engine.cpu_threads (fixed for
        # reproducibility) and CPU training loads data in the main process; two such jobs
        # then run side by side on two cores. GPU clusters set more (profiles/slurm).
        threads: 1
        log:
            L.log("train_{model}_seed{seed}"),
        benchmark:
            L.benchmark("train_{model}_seed{seed}")
        shell:
            "avemo train --model {wildcards.model} --seed {wildcards.seed} --out {params.out_dir:q}"
            " --config-hash {params.hash} --workers {threads} --inputs {params.inputs:q}"
            " --params {params.p:q} > {log:q} 2>&1"


rule baseline:
    conda:
        "../../envs/report.yaml"
    input:
        **P.baseline_inputs(config),
    output:
        dev=L.predictions("{model}", BASELINE_SEED, "dev", "models"),
        test=L.predictions("{model}", BASELINE_SEED, "test", "models"),
    wildcard_constraints:
        model="|".join(P.configured(config, "baseline")),
    params:
        code=code("baseline"),
    log:
        L.log("baseline_{model}"),
    benchmark:
        L.benchmark("baseline_{model}")
    shell:
        "avemo baseline --model {wildcards.model} --train {input.train:q}"
        " --targets {input.dev:q} {input.test:q} --out {output.dev:q} {output.test:q}"
        " > {log:q} 2>&1"


rule evaluate:
    conda:
        "../../envs/report.yaml"
    input:
        preds=inputs(P.evaluate_inputs, config, "model"),
        audio=L.audio("test"),
    output:
        json=report(
            L.metrics("{model}"),
            caption="../report/metrics.rst",
            category="Metrics",
            subcategory="{model}",
        ),
        confusion=L.confusion("{model}"),
    wildcard_constraints:
        model="|".join(re.escape(m) for m in P.scored(config)),
    params:
        code=code("evaluate"),
        p=job_params("evaluate", config),
        preds=paths_json(P.evaluate_inputs, config, "model"),
    log:
        L.log("evaluate_{model}"),
    benchmark:
        L.benchmark("evaluate_{model}")
    shell:
        "avemo evaluate --model {wildcards.model} --out {output.json:q} --params {params.p:q}"
        " --confusion-csv {output.confusion:q} --subsets-audio {input.audio:q}"
        " --predictions {params.preds:q} > {log:q} 2>&1"
