"""Training recipes as importable modules: `unified`, `grouped`, `task_specific` (each has ``main(argv)``).

Run one with ``python -m m2dino.recipes.unified`` or ``accelerate launch -m m2dino.recipes.unified``.
"""
