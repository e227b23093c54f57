# Pipeline outputs -> the write-up (report.md, report.html, tables/*.csv, figures/*.png).


rule qc:
    conda:
        "../../envs/data.yaml"
    input:
        P.flat(P.qc_inputs(config)),
    output:
        csv=L.qc_clips(),
    params:
        code=code("qc"),
        inputs=P.as_json(P.qc_inputs(config)),
    log:
        L.log("qc"),
    benchmark:
        L.benchmark("qc")
    shell:
        "avemo qc --inputs {params.inputs:q} --out {output.csv:q} > {log:q} 2>&1"


rule compare:
    conda:
        "../../envs/report.yaml"
    input:
        P.flat(P.compare_inputs(config)),
    output:
        report(L.compare(), caption="../report/compare.rst", category="Metrics"),
    params:
        code=code("compare"),
        p=job_params("compare", config),
        inputs=P.as_json(P.compare_inputs(config)),
    log:
        L.log("compare"),
    benchmark:
        L.benchmark("compare")
    shell:
        "avemo compare --out {output:q} --params {params.p:q} --inputs {params.inputs:q}"
        " > {log:q} 2>&1"


rule report:
    conda:
        "../../envs/report.yaml"
    input:
        P.report_files(config),
    output:
        md=report(L.report_file("report.md"), caption="../report/report_md.rst", category="Write-up"),
        html=report(
            L.report_file("report.html"), caption="../report/report_html.rst", category="Write-up"
        ),
        figures=report(
            directory(L.report_file("figures")),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Write-up",
            subcategory="Figures",
        ),
        tables=report(
            directory(L.report_file("tables")),
            patterns=["{name}.csv"],
            caption="../report/tables.rst",
            category="Write-up",
            subcategory="Tables",
        ),
    params:
        code=code("report"),
        p=job_params("report", config),
        inputs=P.as_json(P.report_inputs(config)),
        out_dir=out_dir("md"),
    log:
        L.log("report"),
    benchmark:
        L.benchmark("report")
    shell:
        "avemo report --inputs {params.inputs:q} --out-dir {params.out_dir:q}"
        " --params {params.p:q} > {log:q} 2>&1"
