"""Unified recipe: ONE M2DINO model for all selected tasks.

    accelerate launch -m m2dino.recipes.unified                 # the embedded default: synthetic 27-task suite
    accelerate launch -m m2dino.recipes.unified --data /data/FMC_UIA/train --backbone S \
        --pretrained timm/vit_small_patch16_dinov3.lvd1689m --moe-blocks 8,9,10,11 --num-experts 8 --top-k 2
"""

import sys
from pathlib import Path

from .common import (EXIT_INTERRUPTED, RunSummary, build_parser, cli_main, load_data, run_one, selected_tasks,
                     write_summary)


def main(argv=None) -> int:
    return run("unified", __doc__, argv)


def run(recipe: str, description: str, argv=None) -> int:
    """One model for all selected tasks (the unified and semi-supervised recipes)."""
    args = build_parser(recipe, description).parse_args(argv)
    data = load_data(args)
    tasks = selected_tasks(args, data)
    output_dir = Path(args.output_dir)
    result = run_one(args, data, tasks, output_dir)
    if result.interrupted:
        print(f"interrupted at step {result.steps_done}; resume with --resume latest --output-dir {output_dir}")
        return EXIT_INTERRUPTED
    title = "Unified model" if recipe == "unified" else "Semi-supervised model"
    table = write_summary(output_dir, [RunSummary("unified", tasks, result)], title)
    print(table)
    model_dir = result.output_dir  # OUTPUT/stage2 after --two-stage-steps
    print(f"\nmodel: {model_dir} (M2DINO.from_pretrained), best: {model_dir / 'best'}, log: {model_dir / 'log.jsonl'}")


if __name__ == "__main__":
    sys.exit(cli_main(main))
