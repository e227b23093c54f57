# Manifest -> frames sampled by a named policy (frames.sets), stored as sharded uint8 arrays.


rule frames:
    conda:
        "../../envs/frames.yaml"
    input:
        manifest=L.manifest("{split}"),
    output:
        directory(L.frames("{fset}", "{split}")),
    wildcard_constraints:
        fset="|".join(P.frame_sets(config)),
        split="|".join(SPLITS),
    params:
        code=code("frames"),
        p=job_params("frames", config),
    threads: 2
    log:
        L.log("frames_{fset}_{split}"),
    benchmark:
        L.benchmark("frames_{fset}_{split}")
    shell:
        "avemo frames --manifest {input.manifest:q} --out {output:q} --workers {threads}"
        " --params {params.p:q} > {log:q} 2>&1"
