# Manifest -> frames sampled by a named policy (frames.sets), stored as sharded uint8 arrays.


rule frames:
    conda:
        "../../envs/frames.yaml"
    input:
        manifest=f"{R}/manifest/{{split}}.parquet",
    output:
        directory(f"{R}/frames/{{fset}}/{{split}}"),
    params:
        code=P.code_hash("frames"),
        p=lambda w: as_json(P.frames(config, w.fset)),
    threads: 2
    log:
        f"{LOGS}/frames_{{fset}}_{{split}}.log",
    benchmark:
        f"{BENCH}/frames_{{fset}}_{{split}}.tsv",
    shell:
        "avemo frames --manifest {input.manifest:q} --out {output:q} --workers {threads}"
        " --params {params.p:q} > {log:q} 2>&1"
