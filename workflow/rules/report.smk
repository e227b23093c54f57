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
        results=parent("csv", 2),
    log:
        f"{LOGS}/qc.log",
    benchmark:
        f"{BENCH}/qc.tsv",
    shell:
        "avemo qc --results {params.results:q} --out {output.csv:q} > {log:q} 2>&1"


rule report:
    conda:
        "../../envs/report.yaml"
    input:
        manifests=expand(f"{R}/manifest/{{split}}.parquet", split=SPLITS),
        manifest_qc=f"{R}/manifest/qc.csv",
        qc=f"{R}/qc/clips.csv",
        metrics=expand(f"{R}/metrics/{{model}}.json", model=[*MODELS, *P.BASELINES, *FUSION]),
        ablations=expand(f"{R}/metrics/{{model}}@{{ablation}}.json", model=P.early_fusion(config),
                         ablation=P.ABLATIONS),
    output:
        md=f"{R}/report/report.md",
        html=f"{R}/report/report.html",
    params:
        p=as_json({"description": P.dataset_description(config), "config_hash": CONFIG_HASH}),
        out_dir=parent("md"),
        results=parent("md", 2),
    log:
        f"{LOGS}/report.log",
    benchmark:
        f"{BENCH}/report.tsv",
    shell:
        "avemo report --results {params.results:q} --out-dir {params.out_dir:q} --params {params.p:q}"
        " > {log:q} 2>&1"
