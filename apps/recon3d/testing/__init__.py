"""Testing helpers for recon3d: a synthetic scene with exact ground truth, and writers for every layout.

Used by the tests, the benchmark and ``examples/recon3d.py``; the runtime (readers, pipeline) never
imports this package. A reader is never tested only against these writers: see ``tests/data/scenes/``
(hand-written from each format's documentation) and the ``pycolmap`` tests.
"""

from .synthetic import SyntheticScene, make_synthetic_scene
from .writers import WRITERS, write_log, write_scene

__all__ = ["WRITERS", "SyntheticScene", "make_synthetic_scene", "write_log", "write_scene"]
