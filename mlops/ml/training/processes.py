"""Which process writes: one answer for every stage that trains.

Under `torchrun` or `accelerate launch` every rank runs the same stage; only rank 0 may write the model, the
metrics, the tracker's run or the dvclive files, or they would be written (and re-read) once per rank.
"""

from __future__ import annotations

import os


def is_main_process() -> bool:
    """Whether this is the process that writes: rank 0 under torchrun or accelerate, the only one otherwise.

    Read from the launcher's LOCAL_RANK and RANK, so it holds before a Trainer exists and agrees with the
    Trainer's own `is_world_process_zero` once it does."""
    # transformers is imported here, not at module level: a stage that never trains should not pay for it
    from transformers.trainer_utils import is_main_process as local_main

    return local_main(int(os.environ.get("LOCAL_RANK", -1))) and int(os.environ.get("RANK", 0)) == 0
