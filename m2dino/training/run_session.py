"""What a training loop holds open while it runs, and hands back however it ends."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from accelerate import Accelerator
from tqdm.auto import tqdm


@contextmanager
def run_session(accelerator: Accelerator, output_dir: Path, steps: int, done: int, desc: str, progress: bool,
                request_stop: Callable[[], None]) -> Iterator[tuple[TextIO | None, tqdm]]:
    """``(log, bar)`` for a loop from step ``done`` to ``steps``: SIGTERM calls ``request_stop`` (the
    loop finishes its step, checkpoints and returns), ``log`` is OUTPUT/log.jsonl opened for appending
    on the main process (None elsewhere), ``bar`` the progress bar. On the way out, whether the loop
    returned or raised: the bar and the log are closed, the previous SIGTERM handler is back and the
    trackers are ended."""
    previous = signal.signal(signal.SIGTERM, lambda *_: request_stop())
    log = (output_dir / "log.jsonl").open("a") if accelerator.is_main_process else None
    bar = tqdm(total=steps, initial=done, desc=desc, unit="step",
               disable=not (progress and accelerator.is_local_main_process), dynamic_ncols=True)
    try:
        yield log, bar
    finally:
        bar.close()
        signal.signal(signal.SIGTERM, previous)
        if log is not None:
            log.close()
        accelerator.end_training()
