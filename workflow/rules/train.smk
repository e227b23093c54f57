# Per-stream models (one job per model and seed) -> predictions, embeddings; baselines; metrics.

SEEDS = config["train"]["seeds"]
MODELS = P.train_models(config)


wildcard_constraints:
    seed=r"\d+",


rule train:
    conda:
        "../../envs/train.yaml"
    input:
        unpack(lambda w: P.train_inputs(config, w.model)),
    output:
        dev=f"{R}/models/{{model}}/seed{{seed}}/predictions_dev.parquet",
        test=f"{R}/models/{{model}}/seed{{seed}}/predictions_test.parquet",
        summary=f"{R}/models/{{model}}/seed{{seed}}/summary.json",
    wildcard_constraints:
        model="|".join(MODELS),
    params:
        code=P.code_hash("train"),
        p=lambda w: as_json(P.train(config, w.model)),
        # Checkpoints resume only under the same params *and* code: a rerun caused by a code
        # change must not pick up a model trained by the old code.
        hash=lambda w: config_hash([P.train(config, w.model), P.code_hash("train")]),
        extra=lambda w: " ".join(P.model_inputs(config, w.model)["extra_frame_sets"]),
        out_dir=parent("summary"),
        results=parent("summary", 4),
    threads: 2
    log:
        f"{LOGS}/train_{{model}}_seed{{seed}}.log",
    benchmark:
        f"{BENCH}/train_{{model}}_seed{{seed}}.tsv"
    shell:
        "avemo train --results {params.results:q} --model {wildcards.model} --seed {wildcards.seed}"
        " --out {params.out_dir:q} --config-hash {params.hash} --workers {threads}"
        " --extra-frame-sets {params.extra}"
        " --params {params.p:q} > {log:q} 2>&1"


rule baseline:
    conda:
        "../../envs/report.yaml"
    input:
        manifests=expand(f"{R}/manifest/{{split}}.parquet", split=SPLITS),
    output:
        dev=f"{R}/models/{{kind}}/seed0/predictions_dev.parquet",
        test=f"{R}/models/{{kind}}/seed0/predictions_test.parquet",
    wildcard_constraints:
        kind="|".join(P.BASELINES),
    params:
        code=P.code_hash("baseline"),
        manifests=lambda w, input: os.path.dirname(input.manifests[0]),
        out_dir=parent("dev"),
    log:
        f"{LOGS}/baseline_{{kind}}.log",
    benchmark:
        f"{BENCH}/baseline_{{kind}}.tsv"
    shell:
        "avemo baseline --kind {wildcards.kind} --manifests {params.manifests:q}"
        " --out {params.out_dir:q} > {log:q} 2>&1"


rule evaluate:
    conda:
        "../../envs/report.yaml"
    input:
        preds=lambda w: P.evaluate_inputs(config, w.model),
        audio=f"{R}/audio/test",
    output:
        json=report(
            f"{R}/metrics/{{model}}.json",
            caption="../report/metrics.rst",
            category="Metrics",
            subcategory="{model}",
        ),
        confusion=f"{R}/metrics/{{model}}.confusion.csv",
    wildcard_constraints:
        model="|".join(re.escape(m) for m in [*MODELS, *P.BASELINES, *P.fusion_models(config)]),
    params:
        code=P.code_hash("evaluate"),
        p=as_json(P.evaluation(config)),
    log:
        f"{LOGS}/evaluate_{{model}}.log",
    benchmark:
        f"{BENCH}/evaluate_{{model}}.tsv"
    shell:
        "avemo evaluate --model {wildcards.model} --out {output.json:q} --params {params.p:q}"
        " --confusion-csv {output.confusion:q} --subsets-audio {input.audio:q} {input.preds:q}"
        " > {log:q} 2>&1"
