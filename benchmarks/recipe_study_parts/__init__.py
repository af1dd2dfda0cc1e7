"""Parts of benchmarks/recipe_study.py: factors, one cell, the report."""
