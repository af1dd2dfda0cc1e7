"""Per-task bookkeeping of everything that kept a prediction from being scored as-is."""

from __future__ import annotations

from dataclasses import dataclass, field

# What each counter means (also written into the markdown report).
PROBLEM_KINDS: dict[str, str] = {
    "missing": "ground-truth image without a prediction (left out of the challenge's values, as its evaluator "
               "does; a failure in the strict values)",
    "invalid": "prediction present but unusable: wrong type, shape or length, unreadable or non-gray PNG "
               "(as missing)",
    "wrong_size": "segmentation mask of another size (resized to the ground truth, nearest neighbour, then scored)",
    "out_of_range": "scored, but a value lies outside its domain: mask value >= num_classes (pixel in no class); "
                    "class probabilities absent, of the wrong length or non-finite (image left out of the AUC only), "
                    "outside [0, 1] or not summing to 1 (used as given); an inverted box (zero area)",
    "unexpected": "prediction for an image or task that is not in the ground truth, or a PNG that matches no "
                  "ground-truth mask (ignored)",
    "duplicate": "repeated prediction for one image (the last one is used, as in the challenge's evaluator)",
}
MAX_EXAMPLES = 5


@dataclass
class TaskProblems:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PROBLEM_KINDS, 0))
    notes: list[str] = field(default_factory=list)   # the first few examples, and task-level remarks

    def add(self, kind: str, example: str | None = None, count: int = 1) -> None:
        if kind not in self.counts:
            raise KeyError(f"unknown problem kind {kind!r}")
        self.counts[kind] += count
        if example is not None and sum(1 for n in self.notes if n.startswith(f"{kind}: ")) < MAX_EXAMPLES:
            self.notes.append(f"{kind}: {example}")

    def note(self, remark: str) -> None:
        self.notes.append(remark)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict:
        return {**self.counts, "notes": list(self.notes)}
