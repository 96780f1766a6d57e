"""Study runs: notebook parameters, papermill execution, run records, output hygiene and JupyterLab glue."""
