"""The names the split stage writes and the stages after it read: the split files and a training row's origin.

The split stage holds out the recent set and tags each training row `main` or `feedback`; train, refit and the
training library read those tags and files. The names live here, below every stage, so no stage imports
another to learn them.
"""

from __future__ import annotations

SPLITS = ("train", "validation", "test")
RECENT = "recent"  # the held-out share of each labelled feedback batch: recent.parquet
MAIN, FEEDBACK = "main", "feedback"  # a training row's origin
