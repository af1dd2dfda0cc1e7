"""The browser demo: upload a scan (or pick a synthetic example), choose tasks, see the overlays, the
class probabilities and the measurements, download the JSON. Needs the ``demo`` extra (Gradio).

The app's one event is also its API (``/predict``), which is how the tests drive it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from ..data.errors import error_line
from ..image import to_rgb_uint8
from ..limits import LimitError, current, environment_variable
from ..models import M2DINO
from ..models.predictions import ClassificationPrediction
from ..visualize import describe, draw_panel, predictions_to_dict
from ..visualize.examples import EXAMPLES_DIR, example_images
from ..visualize.writer import check_panel_size

# Medical images stay on this machine: no usage statistics sent by Gradio unless the user asks for them.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

try:
    import gradio as gr
except ImportError as err:  # the CLI turns this into one clear line
    raise ImportError("the demo needs Gradio: pip install 'm2dino[demo]' (or pip install -e \".[demo]\" "
                      "in a checkout)") from err

SUMMARY_HEADERS = ["task", "type", "prediction"]
PROBABILITY_HEADERS = ["task", "class", "probability"]
# Gradio deletes the uploads and the files it served once they are this old (seconds), checking this often,
# and all of them when the server stops: a long-running demo does not fill the disk with scans.
CACHE_AGE = 3600


class DemoPredictor:
    """Runs the model for the app: one request at a time (a model in eval mode is not re-entrant
    across threads that change its mode), results written to a per-request JSON file."""

    def __init__(self, model: M2DINO, tile_width: int = 480) -> None:
        self.model = model.eval()
        self.tile_width = tile_width
        self._lock = threading.Lock()
        # inside Gradio's cache folder, so the JSON it serves is not copied again and is deleted with its files
        cache = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")
        cache.mkdir(parents=True, exist_ok=True)
        self._out = Path(tempfile.mkdtemp(prefix="m2dino-demo-", dir=cache))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._out, ignore_errors=True)  # at exit at the latest
        self._count = 0

    def close(self) -> None:
        """Delete this predictor's JSON files (also done when it is garbage-collected or Python exits)."""
        self._cleanup()

    def __call__(self, image: Any, tasks: list[str] | None):
        if image is None:
            raise gr.Error("Upload a scan or pick an example first.")
        if not tasks:
            raise gr.Error("Choose at least one task.")
        try:
            image = read_upload(image)
            check_panel_size(image.shape[:2], len(tasks), self.tile_width, "the scan")
        except (ValueError, OSError) as err:  # not an image, too large, a bomb: one line for the user
            raise gr.Error(error_line(err), print_exception=False) from None
        with self._lock:
            predictions = self.model.predict_all(image, tasks=tasks)
            self._count += 1
            json_path = self._out / f"predictions_{self._count:05d}.json"
        spec = self.model.task_spec
        record = predictions_to_dict(predictions, spec, image_size=image.shape[:2])
        json_path.write_text(json.dumps(record, indent=1))
        summary = [[t, spec(t).type.value, describe(p, spec(t))] for t, p in predictions.items()]
        probabilities = [[t, spec(t).class_names[c], round(float(p.probs[c]), 4)]
                         for t, p in predictions.items() if isinstance(p, ClassificationPrediction)
                         for c in np.argsort(-p.probs)]
        panel = draw_panel(image, predictions, spec, tile_width=self.tile_width)
        return panel, summary, probabilities, str(json_path)


def read_upload(image: Any) -> np.ndarray:
    """The scan as uint8 RGB: Gradio's file payload (a dict with ``path`` and ``orig_name``), a path or an array.

    The app passes the uploaded file unread (``preprocess=False``), so its size and its declared pixels are
    checked here before anything is decoded, and errors name the file the user sent, not the server's copy.
    """
    if isinstance(image, np.ndarray):
        return to_rgb_uint8(image, name="the scan")
    if isinstance(image, dict):
        path = Path(image["path"])
        name = image.get("orig_name") or path.name
    else:
        path = Path(image)
        name = path.name
    size, bound = path.stat().st_size, current().upload_bytes
    if size > bound:
        raise LimitError(f"{name}: {size:,} bytes exceeds the demo's upload limit of {bound:,} bytes "
                         f"(raise it with {environment_variable('upload_bytes')} when starting the demo)")
    try:
        return to_rgb_uint8(path, name=name, exif_orientation=True)  # turned as image viewers show it
    except (ValueError, OSError) as err:
        raise type(err)(str(err).replace(str(path), name)) from None


def build_app(model: M2DINO, title: str = "M2DINO ultrasound demo") -> "gr.Blocks":
    predictor = DemoPredictor(model)
    tasks = list(model.task_ids)
    with gr.Blocks(title=title, delete_cache=(CACHE_AGE, CACHE_AGE)) as app:
        gr.Markdown(f"# {title}\nUpload an ultrasound scan or pick an example, choose tasks and press **Predict**. "
                    "Everything runs on this machine. Research use only: not a medical device.")
        with gr.Row():
            with gr.Column(scale=1):
                # the file as uploaded (the event's preprocess=False): read_upload checks it before decoding
                image = gr.Image(type="filepath", image_mode=None, label="Scan", elem_id="scan")
                chosen = gr.CheckboxGroup(choices=tasks, value=tasks, label="Tasks", elem_id="tasks")
                button = gr.Button("Predict", variant="primary", elem_id="predict")
                gr.Examples(examples=[[str(p)] for p in example_images()], inputs=[image],
                            label="Example scans (synthetic: m2dino.data.synthetic)")
            with gr.Column(scale=2):  # the overlay panel gets the width: it holds one tile per task
                overlay = gr.Image(type="pil", format="png", label="Predictions", elem_id="overlay")
                summary = gr.Dataframe(headers=SUMMARY_HEADERS, label="Per task", elem_id="summary", wrap=True)
        with gr.Row():
            probabilities = gr.Dataframe(headers=PROBABILITY_HEADERS, label="Class probabilities", wrap=True)
            download = gr.File(label="Predictions (JSON, original pixels)")
        button.click(predictor, inputs=[image, chosen], outputs=[overlay, summary, probabilities, download],
                     api_name="predict", preprocess=False)
    return app


def launch(model: M2DINO, host: str = "127.0.0.1", port: int | None = None, block: bool = True) -> "gr.Blocks":
    """Serve the demo on ``host:port`` (localhost by default; pass host="0.0.0.0" to expose it)."""
    app = build_app(model)
    app.launch(server_name=host, server_port=port, share=False, allowed_paths=[str(EXAMPLES_DIR)],
               prevent_thread_lock=not block, quiet=not block, max_file_size=current().upload_bytes)
    return app
