"""Scoring, in three layers, each built on the one below it:

- `per_task`: one task's ground-truth rows and the prediction answering each row -> the challenge's
  result dict, our additional metrics, the strict values and the task's problems. One scorer per
  label kind (`score_segmentation`, ...), named by the evaluation's per-kind table
  (`m2dino.evaluation.kind_evaluations`). Knows no files and no submission.
- `per_submission`: a whole `Submission` (already read) against ground truth -> the metrics.json
  dict (`score_submission`: finds each row's prediction, runs the kind's per-task scorer, counts
  missing, invalid and foreign predictions, adds the summary) and `write_metrics`.
- `fmc_root`: a submission folder against an FMC_UIA data root on disk -> the same dict
  (`score_fmc_submission`, what ``m2dino score`` runs): reads both, then `per_submission`.

The public names are exported by `m2dino.evaluation` (``score_submission``, ``write_metrics``). This
package's ``__init__`` imports nothing: `m2dino.evaluation.kind_evaluations` needs `per_task`, and
`per_submission` needs `kind_evaluations`.
"""
