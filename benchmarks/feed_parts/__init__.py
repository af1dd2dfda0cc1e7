"""The parts of `benchmarks/feed.py` (issue 25: feeding an accelerator)."""
