"""The browser demo: upload a scan (or pick a bundled example), choose tasks, see the overlays, the
class probabilities and the measurements, download the JSON. Needs the ``demo`` extra (Gradio).

The app's one event is also its API (``/predict``), which is how the tests drive it.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from ..models import M2DINO
from ..models.predictions import ClassificationPrediction
from ..visualize import describe, draw_panel, predictions_to_dict
from ..visualize.examples import EXAMPLES_DIR, example_images

# Medical images stay on this machine: no usage statistics sent by Gradio unless the user asks for them.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

try:
    import gradio as gr
except ImportError as err:  # the CLI turns this into one clear line
    raise ImportError("the demo needs Gradio: pip install 'm2dino[demo]' (or pip install -e \".[demo]\" "
                      "in a checkout)") from err

SUMMARY_HEADERS = ["task", "type", "prediction"]
PROBABILITY_HEADERS = ["task", "class", "probability"]


class DemoPredictor:
    """Runs the model for the app: one request at a time (a model in eval mode is not re-entrant
    across threads that change its mode), results written to a per-request JSON file."""

    def __init__(self, model: M2DINO, tile_width: int = 480) -> None:
        self.model = model.eval()
        self.tile_width = tile_width
        self._lock = threading.Lock()
        self._out = Path(tempfile.mkdtemp(prefix="m2dino-demo-"))
        self._count = 0

    def __call__(self, image: np.ndarray | None, tasks: list[str] | None):
        if image is None:
            raise gr.Error("Upload a scan or pick an example first.")
        if not tasks:
            raise gr.Error("Choose at least one task.")
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


def build_app(model: M2DINO, title: str = "M2DINO ultrasound demo") -> "gr.Blocks":
    predictor = DemoPredictor(model)
    tasks = list(model.task_ids)
    with gr.Blocks(title=title) as app:
        gr.Markdown(f"# {title}\nUpload an ultrasound scan or pick an example, choose tasks and press **Predict**. "
                    "Everything runs on this machine. Research use only: not a medical device.")
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(type="numpy", image_mode="RGB", label="Scan", elem_id="scan")
                chosen = gr.CheckboxGroup(choices=tasks, value=tasks, label="Tasks", elem_id="tasks")
                button = gr.Button("Predict", variant="primary", elem_id="predict")
                gr.Examples(examples=[[str(p)] for p in example_images()], inputs=[image],
                            label="Example scans (CC BY 4.0, see the package's examples/ATTRIBUTION.md)")
            with gr.Column(scale=2):  # the overlay panel gets the width: it holds one tile per task
                overlay = gr.Image(type="pil", format="png", label="Predictions", elem_id="overlay")
                summary = gr.Dataframe(headers=SUMMARY_HEADERS, label="Per task", elem_id="summary", wrap=True)
        with gr.Row():
            probabilities = gr.Dataframe(headers=PROBABILITY_HEADERS, label="Class probabilities", wrap=True)
            download = gr.File(label="Predictions (JSON, original pixels)")
        button.click(predictor, inputs=[image, chosen], outputs=[overlay, summary, probabilities, download],
                     api_name="predict")
    return app


def launch(model: M2DINO, host: str = "127.0.0.1", port: int | None = None, block: bool = True) -> "gr.Blocks":
    """Serve the demo on ``host:port`` (localhost by default; pass host="0.0.0.0" to expose it)."""
    app = build_app(model)
    app.launch(server_name=host, server_port=port, share=False, allowed_paths=[str(EXAMPLES_DIR)],
               prevent_thread_lock=not block, quiet=not block)
    return app
