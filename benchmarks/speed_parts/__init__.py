"""The parts of `benchmarks/speed.py`: the plan, the four benchmarks and the report."""
