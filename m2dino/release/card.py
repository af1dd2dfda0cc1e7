"""A release's model card (README.md): YAML front matter with the Hub's ``model-index``, then the
results beside the constant predictor, intended use and limits, the training data's datasheet and
licences, the weights' licence, and how the release was made (command, commit, config, loss curves).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from huggingface_hub import EvalResult, ModelCardData

from ..evaluation.kind_evaluations import EVALUATIONS
from ..tasks import get_task
from .licensing import LicenseDecision

# Label kind → the Hub's task type (its pipeline tags; a scalar measurement has none, hence "other").
HUB_TASK_TYPES = {"mask": "image-segmentation", "class": "image-classification", "boxes": "object-detection",
                  "keypoints": "keypoint-detection", "scalar": "other"}
TAGS = ["ultrasound", "medical-imaging", "dinov3", "mixture-of-experts", "multi-task", "m2dino"]
STANDARD_LIMITS = (
    "Not a medical device: it has not been validated clinically and must not be used for diagnosis or "
    "treatment decisions. Ultrasound appearance varies with the machine, probe, preset and operator: expect "
    "lower accuracy on data unlike the training data, and validate on your own data first. The numbers above "
    "hold for the listed test splits only.")


@dataclass
class ResultRow:
    """One task on one dataset's test split: its headline metrics, for the model and the constant predictor."""

    task: str
    dataset: str
    section: str                   # the metrics.json section (segmentation, classification, ...)
    metrics: dict[str, float]      # headline metric → the model's value
    constant: dict[str, float]     # headline metric → the constant predictor's value
    num_samples: int | None


def result_rows(model_metrics: dict[str, dict], constant_metrics: dict[str, dict],
                tested: dict[str, list[str]]) -> list[ResultRow]:
    """One row per (dataset, task) from the metrics.json dicts of the model and the constant predictor."""
    rows = []
    for dataset, tasks in tested.items():
        for task in tasks:
            evaluation = EVALUATIONS[get_task(task).label_kind.name]
            found = model_metrics[dataset].get(evaluation.section, {}).get(task, {})
            base = constant_metrics[dataset].get(evaluation.section, {}).get(task, {})
            rows.append(ResultRow(task, dataset, evaluation.section,
                                  {m: found[m] for m in evaluation.headline if _number(found.get(m))},
                                  {m: base[m] for m in evaluation.headline if _number(base.get(m))},
                                  found.get("num_samples")))
    return rows


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN is no number


def card_data(name: str, rows: Sequence[ResultRow], decision: LicenseDecision, dinov3: bool) -> ModelCardData:
    """The card's front matter: licence, tags and the ``model-index`` (one result per task and dataset)."""
    results = []
    for row in rows:
        kind = get_task(row.task).label_kind.name
        for metric, value in row.metrics.items():
            results.append(EvalResult(task_type=HUB_TASK_TYPES[kind], task_name=row.task, dataset_type=row.dataset,
                                      dataset_name=row.dataset, dataset_split="test", metric_type=metric,
                                      metric_name=metric, metric_value=float(value)))
    license_fields = {"license": decision.hub_id}
    if dinov3:  # DINOv3 backbone weights: Meta's licence travels with every derivative
        license_fields = {"license": "other", "license_name": "dinov3-license",
                          "license_link": "https://ai.meta.com/resources/models-and-libraries/dinov3-license/"}
    return ModelCardData(model_name=name, library_name="m2dino", tags=TAGS, eval_results=results or None,
                         **license_fields)


def results_table(rows: Sequence[ResultRow]) -> str:
    """The per-task markdown table: each headline metric of the model beside the constant predictor's."""
    lines = ["| task | type | dataset (test split) | images | metric | this model | constant predictor |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        lower = EVALUATIONS[get_task(row.task).label_kind.name].lower_is_better
        for metric in row.metrics:
            arrow = "↓" if metric in lower else "↑"
            constant = row.constant.get(metric)
            lines.append(f"| `{row.task}` | {row.section} | {row.dataset} | {row.num_samples or 'n/a'} | "
                         f"{metric} {arrow} | {row.metrics[metric]:.4f} | "
                         f"{'n/a' if constant is None else f'{constant:.4f}'} |")
    return "\n".join(lines)


def datasheet_table(datasheet: Sequence[dict]) -> str:
    """The training data: per dataset its tasks, image counts, licence and source."""
    lines = ["| dataset | tasks | training samples | test samples | licence | source |", "|---|---|---|---|---|---|"]
    for entry in datasheet:
        lines.append(f"| {entry['dataset']} | {', '.join(f'`{t}`' for t in entry['tasks'])} | "
                     f"{entry['train_samples']} | {entry['test_samples']} | {entry['license']} | "
                     f"{entry.get('note') or 'n/a'} |")
    return "\n".join(lines)


def render_card(*, name: str, data: ModelCardData, summary: str, results: str, evaluate_commands: Sequence[str],
                usage_name: str, first_task: str, intended_use: str, limitations: str | None, datasheet: str,
                license_text: str, command: str, commit: str, config_yaml: str, curves: str | None,
                examples: Sequence[str], examples_credit: str, files: Sequence[str]) -> str:
    """The README.md of a release folder (every section a string, already measured and formatted)."""
    parts = [f"---\n{data.to_yaml()}\n---\n", f"# {name}\n", summary + "\n",
             "## Results\n",
             "Measured by the release run itself on the test split of every dataset the model was trained on, "
             "through the code `m2dino evaluate` runs, on the weights as stored in this folder. The constant "
             "predictor answers every image alike (the per-pixel majority class of the training masks, the "
             "majority class, the mean box, the mean keypoints or the mean value): the floor each number is read "
             "against. ↑: higher is better, ↓: lower is better.\n", results + "\n",
             "Reproduce them exactly (same device kind) with:\n",
             "```bash\n" + "\n".join(evaluate_commands) + "\n```\n",
             "## Usage\n",
             "```python\nfrom m2dino import M2DINO\n\n"
             f'model = M2DINO.from_pretrained("{usage_name}")\n'
             f'prediction = model.predict("scan.png", task="{first_task}")  # in the scan\'s original pixels\n```\n',
             "## Intended use and limits\n", f"Intended use: {intended_use}.\n",
             STANDARD_LIMITS + (f"\n\n{limitations}" if limitations else "") + "\n",
             "## Training data (datasheet)\n", datasheet + "\n",
             "## License\n", license_text + "\n"]
    if examples:
        parts += ["## Examples\n", "\n".join(f"![predictions on {e}]({e})" for e in examples) + "\n",
                  examples_credit + "\n"]
    parts += ["## How this release was made\n", f"Command: `{command}`\n", f"m2dino commit: `{commit}`\n"]
    if curves:
        parts += [f"Training loss:\n\n![loss curves]({curves})\n"]
    parts += ["Release config (resolved, every default filled in):\n", f"```yaml\n{config_yaml}```\n",
              "## Files\n", "\n".join(f"- `{f}`" for f in files) + "\n"]
    return "\n".join(parts)
