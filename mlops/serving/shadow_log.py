"""The traffic log's shadow parts: the challenger's answers, beside and never among the served ones.

`shadow-<day>-<part>.jsonl` files in the traffic log's directory, rotated and
pruned as the served `traffic-*.jsonl` parts are (`serve.traffic`), one line
per shadowed text: `"shadow": true`, `shadow_of` (the id of the served answer
it shadows), the challenger's `prediction`, `confidence` and `model_version`,
the champion's `champion_prediction` and `champion_version`, the shadow's own
model time (`latency_ms`) and a timestamp. No `id` of their own: feedback
cannot label a shadow answer, and no reader of served answers lists these
files (mlops/core/traffic_log.py's `list_parts` matches `traffic-*` only).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops.core.traffic_log import SHADOW_PART, list_shadow_parts
from mlops.serving.traffic import TrafficLog


class ShadowLog(TrafficLog):
    """The traffic log's shadow parts: `shadow-<day>-<part>.jsonl`, beside and never among the served ones."""

    def current_file(self, day: str) -> Path:
        if day != self.day:
            parts = [int(SHADOW_PART.match(p.name).group(2)) for p in list_shadow_parts(self.directory)
                     if SHADOW_PART.match(p.name).group(1) == day]
            self.day, self.part = day, max(parts, default=0)
        return self.directory / f"shadow-{self.day}-{self.part:04d}.jsonl"

    def prune(self) -> None:
        parts = list_shadow_parts(self.directory)
        for old in parts[:max(0, len(parts) - (self.settings.keep_files - 1))]:
            old.unlink(missing_ok=True)

    def lines(self, texts: Sequence[str], results: Sequence[dict[str, Any]], latency_ms: float,
              embeddings: Sequence[Any] | None = None, now: datetime | None = None) -> list[str]:
        """One JSON line per shadow answer (`results` are ready records; the texts are in the served parts)."""
        stamp = (now or datetime.now(UTC)).isoformat()
        return [json.dumps({"timestamp": stamp, "shadow": True, **record, "latency_ms": round(latency_ms, 2)})
                + "\n" for record in results]
