# Raw corpus -> manifest. The corpus is either generated (dataset: synthetic) or MELD.

LABEL_CSVS = [f"{CORPUS}/{LABEL_FILES[s]}" for s in SPLITS]

if config["dataset"] == "synthetic":

    rule synthetic_corpus:
        conda:
            "../../envs/data.yaml"
        output:
            labels=LABEL_CSVS,
            done=f"{CORPUS}/corpus.json",
        params:
            code=P.code_hash("synthetic_corpus"),
            p=as_json(P.synthetic(config)),
            root=parent("done"),
        threads: 4
        log:
            f"{LOGS}/synthetic_corpus.log",
        benchmark:
            f"{BENCH}/synthetic_corpus.tsv",
        shell:
            "avemo synthetic --root {params.root:q} --workers {threads} --params {params.p:q} > {log:q} 2>&1"

else:

    rule download_meld:
        conda:
            "../../envs/data.yaml"
        output:
            labels=LABEL_CSVS,
        params:
            code=P.code_hash("download_meld"),
            p=as_json(P.download(config)),
        log:
            f"{LOGS}/download_meld.log",
        benchmark:
            f"{BENCH}/download_meld.tsv",
        shell:
            "avemo download --params {params.p:q} > {log:q} 2>&1"


rule manifest:
    conda:
        "../../envs/data.yaml"
    input:
        labels=LABEL_CSVS,
    output:
        manifests=expand(f"{R}/manifest/{{split}}.parquet", split=SPLITS),
        qc=f"{R}/manifest/qc.csv",
    params:
        code=P.code_hash("manifest"),
        p=as_json(P.manifest(config)),
        root=lambda w, input: os.path.dirname(input.labels[0]),
        out_dir=parent("qc"),
    threads: 2
    log:
        f"{LOGS}/manifest.log",
    benchmark:
        f"{BENCH}/manifest.tsv",
    shell:
        "avemo manifest --root {params.root:q} --out-dir {params.out_dir:q} --workers {threads}"
        " --params {params.p:q} > {log:q} 2>&1"
