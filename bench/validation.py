"""Benchmark: validating 100,000 rows, and the HTML report seen in a real browser.

1. Times the whole validation stage (GE suite, quarantine split, reports) on
   100,000 rows built from the real AG News data in ../shared/data (the 12,600
   rows repeated with a numbered suffix, so texts stay distinct; the generated
   corpus when that folder is absent). Target: under 10 s.
2. Opens the report in headless Chromium with the network off, screenshots
   it, and checks the picture shows the styles (the verdict badge's colour,
   the table header shading) and the tables.

Writes bench/results/validation.json and bench/results/validation-report.png.

    .venv/bin/python bench/validation.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from mlops.core.params import merge
from mlops.core.settings import parse_settings
from mlops.stages import ingest, validate

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SHARED = ROOT.parent / "shared" / "data"


def settings_and_rows(rows: int):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if (SHARED / "ag_news" / "test.csv").is_file():
        preset = yaml.safe_load((ROOT / "configs" / "ag_news.yaml").read_text())
        for source in ("source", "test_source"):
            preset["data"][source]["path"] = str(ROOT / preset["data"][source]["path"])
        merge(params, preset)
        settings = parse_settings(params)
        base, origin = ingest.ingest(settings), "AG News (../shared/data), repeated with numbered suffixes"
    else:
        from mlops.stages.generate import generate_corpus

        settings = parse_settings(params)
        base = generate_corpus(20000, settings.data.generated.classes, settings.seed).assign(subset="main")
        origin = "generated corpus"
    copies = -(-rows // len(base))
    frame = pd.concat([base.assign(text=base["text"] + f" [{i}]") if i else base for i in range(copies)],
                      ignore_index=True).head(rows)
    return settings, frame, origin


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def screenshot(html: Path, png: Path) -> dict:
    browser = find_chromium()
    if browser is None:
        return {"checked": False, "why": "no chromium on PATH (apt-get install chromium)"}
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9",  # nothing may be fetched
                        "--window-size=1200,1000", f"--screenshot={png}", html.as_uri()],
                       check=True, capture_output=True, timeout=120)
    from PIL import Image

    image = Image.open(png).convert("RGB")
    pixels = list(image.getdata())

    def share(rgb: tuple[int, int, int], tolerance: int = 6) -> float:
        return sum(all(abs(a - b) <= tolerance for a, b in zip(p, rgb, strict=True)) for p in pixels) / len(pixels)

    badge, header, border = share((0x1E, 0x7B, 0x34)), share((0xEE, 0xF1, 0xF5)), share((0xCC, 0xCC, 0xCC), 10)
    styled = badge > 0.0005 and header > 0.002 and border > 0.001
    return {"checked": True, "styled_and_tables_visible": styled, "badge_pixel_share": round(badge, 5),
            "table_header_pixel_share": round(header, 5), "table_border_pixel_share": round(border, 5),
            "png": str(png.relative_to(ROOT))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    settings, frame, origin = settings_and_rows(args.rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "batch.parquet"
        frame.to_parquet(data)
        validate.run(settings, validate.ValidateIO(data=data, out=Path(tmp) / "ok.parquet",
                                                   report_dir=Path(tmp) / "warm"))  # imports and GE start-up
        started = time.perf_counter()
        summary = validate.run(settings, validate.ValidateIO(data=data, out=Path(tmp) / "ok.parquet",
                                                             report_dir=RESULTS / "validation-report",
                                                             quarantine=Path(tmp) / "q.parquet"))
        seconds = time.perf_counter() - started
    report = screenshot(RESULTS / "validation-report" / "report.html", RESULTS / "validation-report.png")
    result = {"rows": len(frame), "data": origin, "seconds": round(seconds, 2), "target_seconds": 10,
              "meets_target": seconds < 10, "accepted": summary["success"],
              "checks": len(summary["checks"]), "html_report": report}
    (RESULTS / "validation.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
