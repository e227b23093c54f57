# Manifest (+ the timestamps of the audio.aligned_frame_set frames) -> utterance vectors and frame-aligned log-mel windows.


rule audio:
    conda:
        "../../envs/audio.yaml"
    input:
        manifest=f"{R}/manifest/{{split}}.parquet",
        frames=f"{R}/frames/{config['audio']['aligned_frame_set']}/{{split}}",
    output:
        directory(f"{R}/audio/{{split}}"),
    params:
        code=P.code_hash("audio"),
        p=as_json(P.audio(config)),
    threads: 2
    log:
        f"{LOGS}/audio_{{split}}.log",
    benchmark:
        f"{BENCH}/audio_{{split}}.tsv",
    shell:
        "avemo audio --manifest {input.manifest:q} --frames {input.frames:q} --out {output:q}"
        " --workers {threads} --params {params.p:q} > {log:q} 2>&1"
