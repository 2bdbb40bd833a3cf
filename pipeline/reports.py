"""Where every run's HTML report, plots and result live, and how the UI reaches them.

Each recorded run gets three files under `$CRYPTO4H_REPORTS_DIR` (default `data/reports/`):
`runs/<run id>-<strategy>.html` (the engine's self-contained report), `...-equity.png` (the plot shown
inline in the Dagster UI) and `...-result.pkl.gz` (the engine result, so comparisons and reused runs can
write reports later without re-running). The Dagster UI shows markdown images inline only when the
markdown is short, so plots are referenced by URL: `python -m pipeline.reports serve` (started by
`make ui`) serves the folder on `$CRYPTO4H_REPORTS_URL` (default http://127.0.0.1:3001). In a
multi-machine deployment the folder must be shared storage served by any static web server.

    python -m pipeline.reports serve [--port 3001]     # serve the reports folder (read-only)
    python -m pipeline.reports path RUN_ID             # where a run's report is
"""

from __future__ import annotations

import argparse
import gzip
import os
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.universe import REPO_ROOT

REPORTS_ENV = "CRYPTO4H_REPORTS_DIR"
REPORTS_URL_ENV = "CRYPTO4H_REPORTS_URL"
DEFAULT_PORT = 3001


def reports_dir() -> Path:
    return Path(os.environ.get(REPORTS_ENV) or REPO_ROOT / "data" / "reports").expanduser().resolve()


def reports_url() -> str:
    return (os.environ.get(REPORTS_URL_ENV) or f"http://127.0.0.1:{DEFAULT_PORT}").rstrip("/")


@dataclass(frozen=True)
class RunFiles:
    """A run's files and the URLs the UI links to."""

    html: Path
    png: Path
    result: Path

    def url(self, path: Path) -> str:
        return f"{reports_url()}/{path.relative_to(reports_dir()).as_posix()}"

    @property
    def html_url(self) -> str:
        return self.url(self.html)

    @property
    def png_url(self) -> str:
        return self.url(self.png)


def run_files(run_id: int, strategy: str) -> RunFiles:
    stem = reports_dir() / "runs" / f"{int(run_id):06d}-{strategy}"
    return RunFiles(html=stem.with_suffix(".html"), png=Path(f"{stem}-equity.png"),
                    result=Path(f"{stem}-result.pkl.gz"))  # fmt: skip


def save_run(run_id: int, result: Any, figure: Any) -> RunFiles:
    """Write the run's report, its equity plot (a matplotlib figure) and its pickled result."""
    from engine.report import write_report
    from pipeline.metadata import save_png

    files = run_files(run_id, result.strategy)
    files.html.parent.mkdir(parents=True, exist_ok=True)
    write_report(result, files.html)
    save_png(figure, files.png)
    tmp = files.result.with_suffix(".tmp")
    with gzip.open(tmp, "wb", compresslevel=5) as fh:
        pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(files.result)  # atomic: a reader never sees half a file
    return files


def load_result(run_id: int, strategy: str) -> Any | None:
    """The engine result saved with a run (None when absent or written by incompatible code)."""
    path = run_files(run_id, strategy).result
    if not path.is_file():
        return None
    try:
        with gzip.open(path, "rb") as fh:
            return pickle.load(fh)  # noqa: S301 - our own file, written by save_run
    except Exception:  # noqa: BLE001 - an unreadable or outdated artifact is simply unavailable
        return None


def comparison_file(name: str) -> Path:
    return reports_dir() / "comparisons" / f"{name}.html"


def serve(port: int) -> int:
    """Serve the reports folder read-only (a plain static server, like any production web server)."""
    import functools
    import http.server

    root = reports_dir()
    root.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
        note = "" if reports_url().endswith(f":{port}") else f" (the UI links point at {reports_url()}: set {REPORTS_URL_ENV})"
        print(f"serving reports from {root} on http://127.0.0.1:{port}{note}; Ctrl-C stops", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            return 0
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.reports", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve the reports folder over HTTP")
    s.add_argument("--port", type=int, default=DEFAULT_PORT)
    p = sub.add_parser("path", help="print the report path of a stored run")
    p.add_argument("run_id", type=int)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args.port)
    found = sorted((reports_dir() / "runs").glob(f"{args.run_id:06d}-*.html"))
    if not found:
        print(f"error: no report for run {args.run_id} under {reports_dir() / 'runs'}", file=sys.stderr)
        return 1
    print(found[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
