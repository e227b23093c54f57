"""The write-up: tables, figures and report.md/html, built from pipeline output files only."""
