"""The parts of `benchmarks/aggregation.py`: the report (tables, plot and markdown from its JSON)."""
