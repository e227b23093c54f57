# Manifest (+ the timestamps of the audio.aligned_frame_set frames) -> utterance vectors and
# frame-aligned log-mel windows.


rule audio:
    conda:
        "../../envs/audio.yaml"
    input:
        manifest=L.manifest("{split}"),
        frames=L.frames(config["audio"]["aligned_frame_set"], "{split}"),
    output:
        directory(L.audio("{split}")),
    wildcard_constraints:
        split="|".join(SPLITS),
    params:
        code=code("audio"),
        p=job_params("audio", config),
    threads: 2
    log:
        L.log("audio_{split}"),
    benchmark:
        L.benchmark("audio_{split}")
    shell:
        "avemo audio --manifest {input.manifest:q} --frames {input.frames:q} --out {output:q}"
        " --workers {threads} --params {params.p:q} > {log:q} 2>&1"


# Manifest + the aligned frames' timestamps and activity -> per clip, the share of time with
# speech (Silero VAD) and how visual activity co-varies with it (which world the corpus is).
rule speech_share:
    conda:
        "../../envs/audio.yaml"
    input:
        manifest=L.manifest("{split}"),
        frames=L.frames(config["audio"]["aligned_frame_set"], "{split}"),
    output:
        L.speech("{split}"),
    wildcard_constraints:
        split="|".join(SPLITS),
    params:
        code=code("speech"),
        p=job_params("speech_share", config),
    threads: 1
    log:
        L.log("speech_share_{split}"),
    benchmark:
        L.benchmark("speech_share_{split}")
    shell:
        "avemo speech --manifest {input.manifest:q} --frames {input.frames:q} --out {output:q}"
        " --workers {threads} --params {params.p:q} > {log:q} 2>&1"
