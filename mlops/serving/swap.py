"""Hot swap: a served champion follows the registry without a restart and without dropping a request.

BentoML loads a service's model once, when a worker starts; a promotion or a
rollback in the registry would reach users only after someone restarted
`make serve`. Here each worker keeps its model in a `ModelSlot` and a daemon
thread polls the registry (a small JSON file). When the champion changes, the
new model is loaded in that thread, beside the one serving, and then put in
the slot by one assignment: a request reads the slot once, when it starts,
and finishes on that model even if a swap happens meanwhile (`Pinned` carries
the model into the scheduler, whose windows hold the requests of one model
only, mlops/serving/scheduler.py). Every answer names the version that produced
it, and /readyz stays 200 throughout: nothing is unloaded until it is unused.
The model that was replaced is kept, so a rollback to it swaps back at once.
A champion that cannot be loaded is logged and skipped; the current model
keeps serving. The Bento's code and `serve:` settings do not change with a
swap: a promotion that only rebuilt the Bento (same model) needs a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

logger = logging.getLogger("mlops.serving.swap")

Active = tuple[str, Any]  # (model version, classifier)


class Pinned(list):
    """A request's texts with the model that was serving when it arrived, through the scheduler."""

    active: Active

    def __init__(self, texts: Sequence[str], active: Active) -> None:
        super().__init__(texts)
        self.active = active


class ModelSlot:
    """The (version, model) that answers new requests, replaced atomically when the registry's champion changes."""

    def __init__(self, version: str, model: Any, load: Callable[[str], Any], champion: Callable[[], str | None],
                 poll_s: float) -> None:
        self.active: Active = (version, model)
        self.previous: Active | None = None
        self.load = load
        self.champion = champion
        self.poll_s = poll_s
        self.refused: set[str] = set()  # versions that failed to load: not retried until the registry moves on
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def follow(self) -> None:
        """Start the daemon thread that polls the registry."""
        self.thread = threading.Thread(target=self.watch, name="registry-follower", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def watch(self) -> None:
        while not self.stopped.wait(self.poll_s):
            try:
                self.sync()
            except Exception:  # a broken registry file must not kill the follower: the next poll retries
                logger.exception("registry poll failed; still serving %s", self.active[0])

    def sync(self) -> bool:
        """One poll: swap to the registry's champion if it is another model. True if a swap happened."""
        wanted = self.champion()
        if not wanted or wanted == self.active[0]:
            self.refused.clear()
            return False
        if wanted in self.refused:
            return False
        if self.previous is not None and self.previous[0] == wanted:
            replacement = self.previous
        else:
            try:
                replacement = (wanted, self.load(wanted))
            except Exception as error:
                self.refused.add(wanted)
                logger.error("cannot load the new champion %s (%s); still serving %s", wanted, error,
                             self.active[0])
                return False
        self.previous, self.active = self.active, replacement  # one assignment: new requests see the new model
        logger.warning("swapped to the registry's champion %s (was %s)", wanted, self.previous[0])
        return True
