# Raw corpus -> manifest. The corpus is either generated (dataset: synthetic) or MELD.

if config["dataset"] == "synthetic":

    rule synthetic_corpus:
        conda:
            "../../envs/data.yaml"
        output:
            # The whole folder (label CSVs + clips): every later stage reads the clips.
            directory(L.synthetic_corpus()),
        params:
            code=code("synthetic"),
            p=job_params("synthetic_corpus", config),
        threads: 4
        log:
            L.log("synthetic_corpus"),
        benchmark:
            L.benchmark("synthetic_corpus")
        shell:
            "avemo synthetic --root {output:q} --workers {threads} --params {params.p:q} > {log:q} 2>&1"

else:

    rule download_meld:
        conda:
            "../../envs/data.yaml"
        output:
            labels=P.corpus_outputs(config),
        params:
            code=code("download"),
            p=job_params("download_meld", config),
        log:
            L.log("download_meld"),
        benchmark:
            L.benchmark("download_meld")
        shell:
            "avemo download --params {params.p:q} > {log:q} 2>&1"


rule manifest:
    conda:
        "../../envs/data.yaml"
    input:
        P.corpus_inputs(config),
    output:
        manifests=list(L.manifests().values()),
        qc=L.manifest_qc(),
    params:
        code=code("manifest"),
        p=job_params("manifest", config),
        # The corpus folder: the generated one (the input itself), or MELD's (beside its CSVs).
        root=lambda w, input: input[0] if len(input) == 1 else os.path.dirname(input[0]),
        out_dir=out_dir("qc"),
    threads: 2
    log:
        L.log("manifest"),
    benchmark:
        L.benchmark("manifest")
    shell:
        "avemo manifest --root {params.root:q} --out-dir {params.out_dir:q} --workers {threads}"
        " --params {params.p:q} > {log:q} 2>&1"
