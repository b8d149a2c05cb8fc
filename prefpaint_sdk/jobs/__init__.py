"""Manifest jobs across processes: stable sharding by id, whole output sets exactly once, one merged result.

A folder batch is a manifest too (:func:`folder_job`: one row per image, its id the stem), run the same way.

See :mod:`prefpaint_sdk.jobs.runner` for the guarantees and :mod:`prefpaint_sdk.jobs.manifest` for the rows.
"""

from .eval_job import run_eval_job
from .generate import DEFAULT_KINDS, run_generate_dataset
from .manifest import ID_PATTERN, INPAINT_PARAMS, JobItem, check_item_files, folder_job, read_job_manifest
from .progress import DiskProgress
from .runner import RECORDS, RESULTS, JobContext, JobSummary, merge_results, run_items, shard_of
from .tasks import run_inpaint_job, run_score_job

__all__ = [
    "DEFAULT_KINDS", "DiskProgress", "ID_PATTERN", "INPAINT_PARAMS", "JobContext", "JobItem", "JobSummary", "RECORDS",
    "RESULTS", "check_item_files", "folder_job", "merge_results", "read_job_manifest", "run_eval_job", "run_generate_dataset",
    "run_inpaint_job", "run_items", "run_score_job", "shard_of",
]
