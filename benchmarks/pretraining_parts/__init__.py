"""The parts of `benchmarks/pretraining.py`: the pretraining stage, the per-cell result store, the
linear probes, the recipe runs (frozen segmentation, 10 % fine-tuning), the PCA picture and the report."""
