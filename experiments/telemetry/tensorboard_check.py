"""Check a run's TensorBoard dashboards the way the browser gets them: through a real TensorBoard server's HTTP API.

Starts the TensorBoard installed beside this Python on the run's ``tb`` directory (named as ``modrl train`` tells users
to: ``--logdir_spec NAME:RUN/tb``), waits until it has read the run, then fetches what TensorBoard's web page fetches
and checks it against the run's own final evaluation (``RUN/eval/*.json``: task and module names):

* run name: the run directory's name, not ``.``;
* images: the task x module heatmap is served, as a figure (at least 300 px wide: labelled, with a colour bar), not a
  raw 64 x 48 pixel map; every served step is saved under ``--out`` to look at;
* custom scalars: one chart per training task, each matching one scalar per module
  (``modrl/task/<task>/weight/<module>``);
* text: the resolved config (its ``name`` and ``seed`` lines);
* hparams: the config keys and the final ``hparam/success_*`` metrics, with a value for this run;
* the option-call timeline (options runs) and ``modrl show --tensorboard``'s episode GIFs when the run has them.

With ``--screenshots`` it also opens each dashboard (Images, Custom Scalars, Text, HParams, Scalars) in headless
Chromium (``--browser``, default: ``chromium`` / ``chromium-browser`` / ``google-chrome`` on PATH; on Debian
``apt-get install chromium``) and saves a PNG per dashboard under ``--out``; a screenshot that comes back blank (one
colour) fails. Prints one line per check and exits 1 if any fails.

Usage::

    python experiments/telemetry/tensorboard_check.py RUN_DIR --out /tmp/tb-check [--screenshots]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

HEATMAP = "modrl/routing/task_module_heatmap"
#: The dashboards screenshotted (TensorBoard's URL fragment for each).
DASHBOARDS = ("images", "custom_scalars", "text", "hparams", "scalars")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
OPTIONAL_IMAGES = ("modrl/options/timeline", "modrl/show/")
MIN_FIGURE_WIDTH = 300


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Board:
    """A TensorBoard server on ``run_dir/tb``, its HTTP data API, stopped on exit."""

    def __init__(self, run_dir: Path, name: str, timeout: float) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "tensorboard.main", "--logdir_spec", f"{name}:{run_dir / 'tb'}"]
        # Load every event file before serving (a large run's files otherwise arrive over many seconds), read once.
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--reload_task", "blocking"]
        command += ["--reload_interval", "0"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.timeout = timeout

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def get(self, path: str, **query: str) -> bytes:
        url = f"{self.base}/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        with urllib.request.urlopen(url, timeout=30) as reply:
            return bytes(reply.read())

    def json(self, path: str, body: dict[str, Any] | None = None, **query: str) -> Any:
        if body is None:
            return json.loads(self.get(path, **query))
        request = urllib.request.Request(
            f"{self.base}/{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read())

    def wait_for(self, ready: Callable[[], bool]) -> None:
        """Poll until ``ready()`` (TensorBoard loads event files in the background after it starts serving)."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.process.stderr.read()[-500:] if self.process.stderr else ""
                raise RuntimeError(f"tensorboard exited: {tail.strip()}")
            try:
                if ready():
                    return
            except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"tensorboard did not serve the run within {self.timeout:.0f} s")


def expected_names(run_dir: Path) -> tuple[list[str], list[str]]:
    """The training tasks and the module names, from the run's latest final evaluation (written by ``modrl train`` /
    ``modrl eval``): its rows of the run's ``env.split`` (every row without a split). Held-out tasks are evaluated,
    never trained on, so training logs no routing for them."""
    reports = sorted((run_dir / "eval").glob("*.json"))
    if not reports:
        raise SystemExit(f"error: {run_dir / 'eval'} has no evaluation JSON; run 'modrl eval {run_dir}' first")
    report = json.loads(reports[-1].read_text())
    split = (yaml.safe_load((run_dir / "config.yaml").read_text()).get("env") or {}).get("split")
    rows = [row for row in report["tasks"] if split is None or row["split"] == split]
    return list(dict.fromkeys(row["task"] for row in rows)), list(report["module_names"])


def check_run(board: Board, run: str, tasks: list[str], modules: list[str], out: Path) -> list[tuple[str, bool, str]]:
    """Every check as ``(name, passed, detail)``."""
    results: list[tuple[str, bool, str]] = []
    runs = board.json("data/runs")
    results.append(("run name", runs == [run] or runs == [f"{run}/."], f"runs {runs}"))
    tb_run = runs[0]

    images = board.json("data/plugin/images/tags").get(tb_run, {})
    saved = []
    for tag in [HEATMAP, *(t for t in images if t.startswith(OPTIONAL_IMAGES))]:
        if tag not in images:
            results.append((f"image {tag}", False, "not logged"))
            continue
        widths = []
        for sample in board.json("data/plugin/images/images", run=tb_run, tag=tag):
            png = board.get("data/plugin/images/individualImage?" + sample["query"])
            suffix = ".gif" if png.startswith(b"GIF8") else ".png"  # modrl show's animations are served as GIFs
            path = out / f"{tag.replace('/', '_')}-step{sample['step']}{suffix}"
            path.write_bytes(png)
            saved.append(path)
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            widths.append(pixels.shape[1])
        ok = bool(widths) and min(widths) >= MIN_FIGURE_WIDTH
        results.append((f"image {tag}", ok, f"{len(widths)} step(s), widths {sorted(set(widths))} px"))

    layout = board.json("data/plugin/custom_scalars/layout")
    charts = {c["title"]: c["multiline"]["tag"] for cat in layout.get("category", []) for c in cat["chart"]}
    scalar_tags = set(board.json("data/plugin/scalars/tags").get(tb_run, {}))
    for task in tasks:
        wanted = {f"modrl/task/{task}/weight/{m}" for m in modules}
        patterns = charts.get(task)
        matched = {t for t in scalar_tags if patterns and any(re.match(p, t) for p in patterns)}  # as TensorBoard does
        results.append(
            (f"custom scalars {task}", patterns is not None and matched == wanted, f"{len(matched)} of {len(modules)}")
        )

    text_tags = board.json("data/plugin/text/tags").get(tb_run, [])
    config_text = ""
    if "modrl/config/text_summary" in text_tags:
        config_text = board.json("data/plugin/text/text", run=tb_run, tag="modrl/config/text_summary")[-1]["text"]
    results.append(("text config", "name:" in config_text and "seed:" in config_text, f"{len(config_text)} chars"))

    experiment = board.json("data/plugin/hparams/experiment", {"experimentName": ""})
    metrics = [m["name"]["tag"] for m in experiment.get("metricInfos", [])]
    groups = board.json(
        "data/plugin/hparams/session_groups",
        {
            "experimentName": "",
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
            "colParams": [],
            "startIndex": 0,
            "sliceSize": 10,
        },
    )
    values = [v for g in groups.get("sessionGroups", []) for v in g.get("metricValues", [])]
    ok = any(m.startswith("hparam/success_") for m in metrics) and bool(values)
    detail = f"{len(experiment.get('hparamInfos', []))} keys, metrics {metrics}, {len(values)} value(s)"
    results.append(("hparams", ok, detail))
    results.append(("saved images", bool(saved), ", ".join(p.name for p in saved[:4])))
    return results


def screenshots(board: Board, browser: str, out: Path) -> list[tuple[str, bool, str]]:
    """Each dashboard of :data:`DASHBOARDS` rendered by headless ``browser`` into ``out/screenshot-<name>.png``;
    passes when the PNG exists and is not one flat colour (the page drew something)."""
    results = []
    for name in DASHBOARDS:
        path = out / f"screenshot-{name}.png"
        command = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
        command += ["--window-size=1400,1000", "--virtual-time-budget=15000", f"--screenshot={path}"]
        try:
            subprocess.run([*command, f"{board.base}/#{name}"], capture_output=True, timeout=120, check=False)
        except subprocess.TimeoutExpired:
            results.append((f"screenshot {name}", False, "the browser did not finish within 120 s"))
            continue
        if not path.is_file():
            results.append((f"screenshot {name}", False, "no screenshot written"))
            continue
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L"))
        colours = len(np.unique(pixels))
        results.append((f"screenshot {name}", colours > 1, f"{path.name}, {pixels.shape[1]}x{pixels.shape[0]} px"))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run directory made by 'modrl train'")
    parser.add_argument("--out", type=Path, required=True, help="directory for the images TensorBoard serves")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for TensorBoard (default 120)")
    parser.add_argument("--screenshots", action="store_true", help="also screenshot the dashboards (Chromium)")
    parser.add_argument("--browser", help=f"the Chromium to use (default: the first of {', '.join(BROWSERS)} on PATH)")
    args = parser.parse_args(argv)
    if args.browser is not None and shutil.which(args.browser) is None:
        parser.error(f"--browser {args.browser}: not an executable")
    browser = shutil.which(args.browser) if args.browser else next(filter(None, map(shutil.which, BROWSERS)), None)
    if args.screenshots and browser is None:
        parser.error("--screenshots needs Chromium: none of " + ", ".join(BROWSERS) + " is on PATH (give --browser)")
    run_dir = args.run_dir.resolve()
    if not (run_dir / "tb").is_dir():
        parser.error(f"{args.run_dir}: no tb/ directory (not a modrl run?)")
    tasks, modules = expected_names(run_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with Board(run_dir, run_dir.name, args.timeout) as board:
            board.wait_for(lambda: bool(board.json("data/plugin/scalars/tags")))
            board.wait_for(lambda: bool(board.json("data/plugin/hparams/experiment", {"experimentName": ""})))
            results = check_run(board, run_dir.name, tasks, modules, args.out)
            if args.screenshots:
                assert browser is not None
                results += screenshots(board, browser, args.out)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, ok, detail in results:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    failed = sum(not ok for _, ok, _ in results)
    print(f"{len(results) - failed} of {len(results)} checks passed; images in {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
