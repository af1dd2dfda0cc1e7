"""The `m2dino` command line."""
