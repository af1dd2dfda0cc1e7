"""What every benchmark here shares: paired, interleaved timing (`timing`), the machine it ran on
(`machine`) and writing results as markdown + JSON (`report`). Torch-free, so that benchmarks that
need only NumPy (e.g. `metrics_speed.py`) can use it too."""
