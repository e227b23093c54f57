"""ruff and `snakemake --lint` are part of the suite: style problems fail CI."""

import subprocess

from conftest import BIN, REPO, tool_env


def test_ruff_clean():
    proc = subprocess.run([str(BIN / "ruff"), "check", str(REPO)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakemake_lint_clean():
    proc = subprocess.run([str(BIN / "snakemake"), "--lint"], cwd=REPO, capture_output=True,
                          text=True, env=tool_env(), timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in out, out
