# Pipeline outputs -> the write-up (report.md, report.html, tables/*.csv, figures/*.png).


rule qc:
    conda:
        "../../envs/data.yaml"
    input:
        manifests=expand(f"{R}/manifest/{{split}}.parquet", split=SPLITS),
        frames=expand(f"{R}/frames/{STUDY_SET}/{{split}}", split=SPLITS),
        audio=expand(f"{R}/audio/{{split}}", split=SPLITS),
    output:
        csv=f"{R}/qc/clips.csv",
    params:
        code=P.code_hash("qc"),
        results=parent("csv", 2),
    log:
        f"{LOGS}/qc.log",
    benchmark:
        f"{BENCH}/qc.tsv",
    shell:
        "avemo qc --results {params.results:q} --out {output.csv:q} > {log:q} 2>&1"


rule compare:
    conda:
        "../../envs/report.yaml"
    input:
        RS.compare_inputs(config, R),
    output:
        report(f"{R}/metrics/compare.json", caption="../report/compare.rst", category="Metrics"),
    params:
        code=P.code_hash("compare"),
        p=as_json(RS.compare_params(config)),
    log:
        f"{LOGS}/compare.log",
    benchmark:
        f"{BENCH}/compare.tsv"
    shell:
        "avemo compare --out {output:q} --params {params.p:q} {input:q} > {log:q} 2>&1"


rule report:
    conda:
        "../../envs/report.yaml"
    input:
        manifests=expand(f"{R}/manifest/{{split}}.parquet", split=SPLITS),
        manifest_qc=f"{R}/manifest/qc.csv",
        qc=f"{R}/qc/clips.csv",
        metrics=expand(f"{R}/metrics/{{model}}.json", model=[*MODELS, *P.BASELINES, *FUSION]),
        ablations=expand(
            f"{R}/metrics/{{model}}@{{ablation}}.json",
            model=RS.ablation_models(config),
            ablation=P.ABLATIONS,
        ),
        compare=[f"{R}/metrics/compare.json"] if RS.comparison_pairs(config) else [],
        # log.csv (learning curves) is written by the same job as summary.json
        summaries=[
            f"{R}/{P.model_dir(config, m)}/{m}/seed{s}/summary.json"
            for m in [*MODELS, *EARLY]
            for s in SEEDS
        ],
    output:
        md=report(f"{R}/report/report.md", caption="../report/report_md.rst", category="Write-up"),
        html=report(
            f"{R}/report/report.html", caption="../report/report_html.rst", category="Write-up"
        ),
        figures=report(
            directory(f"{R}/report/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Write-up",
            subcategory="Figures",
        ),
        tables=report(
            directory(f"{R}/report/tables"),
            patterns=["{name}.csv"],
            caption="../report/tables.rst",
            category="Write-up",
            subcategory="Tables",
        ),
    params:
        code=P.code_hash("report"),
        p=as_json({**RS.report_params(config), "config_hash": CONFIG_HASH}),
        out_dir=parent("md"),
        results=parent("md", 2),
    log:
        f"{LOGS}/report.log",
    benchmark:
        f"{BENCH}/report.tsv"
    shell:
        "avemo report --results {params.results:q} --out-dir {params.out_dir:q}"
        " --params {params.p:q} > {log:q} 2>&1"
