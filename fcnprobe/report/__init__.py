"""The HTML report: records in, one self-contained page out. Never imports torch.

``build.build_report(run_dir)`` writes ``run_dir/index.html`` from the stored
records alone; ``build.build_comparison(a, b)`` renders the deltas of two runs.
"""
