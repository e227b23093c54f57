# Manifest -> frames sampled at consistent intervals, stored as sharded uint8 arrays.


rule frames:
    conda:
        "../../envs/frames.yaml"
    input:
        manifest=f"{R}/manifest/{{split}}.parquet",
    output:
        directory(f"{R}/frames/{{split}}"),
    params:
        p=as_json(P.frames(config)),
    threads: 2
    log:
        f"{LOGS}/frames_{{split}}.log",
    benchmark:
        f"{BENCH}/frames_{{split}}.tsv",
    shell:
        "avemo frames --manifest {input.manifest:q} --out {output:q} --workers {threads}"
        " --params {params.p:q} > {log:q} 2>&1"
