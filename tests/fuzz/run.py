"""Run every fuzz target for a bounded time; exit non-zero on any crash, hang or leak.

    python tests/fuzz/run.py                  # 60 s per target
    python tests/fuzz/run.py --seconds 90     # what CI runs (.ci/run)
    python tests/fuzz/run.py --seconds 3600 --corpus fuzz-corpus   # a longer run

Each target runs in a subprocess (libFuzzer via atheris) with the seeds from ../shared/ as its
corpus in a temporary directory (or in ``--corpus DIR/<target>``, kept and grown between
runs), ``-max_total_time``, a per-input ``-timeout`` (a hang is a failure) and an RSS limit.
The summary gives, per target, the executions, executions per second and the corpus size.
Inputs that failed are kept in the artifact directory named in the summary; replay one with
``python tests/fuzz/fuzz_request.py ARTIFACT``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.fuzz.seeds import Kind, SeedsMissing, write_corpus  # noqa: E402

TARGETS: dict[str, tuple[str, Kind | None]] = {
    # name: (script, which seed messages)
    "ttlv": ("fuzz_ttlv.py", None),
    "request": ("fuzz_request.py", "request"),
}

_DONE = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+) ft: \d+ corp: (\d+)/\S+ .*exec/s: (\d+)")
_STATUS = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: \d+ corp: (\d+)/")


@dataclass
class Result:
    target: str
    returncode: int
    seconds: float
    seeds: int
    executions: int = 0
    exec_per_s: float = 0.0
    corpus: int = 0
    coverage: int = 0
    artifacts: tuple[Path, ...] = ()
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.artifacts and not self.note


def _parse(log: str, result: Result) -> None:
    for match in _STATUS.finditer(log):
        result.executions = int(match.group(1))
        result.coverage = int(match.group(2))
        result.corpus = int(match.group(3))
    done = _DONE.search(log)
    if done:
        result.exec_per_s = float(done.group(4))
    elif result.seconds > 0:
        result.exec_per_s = result.executions / result.seconds


def run_target(name: str, args: argparse.Namespace, work: Path, artifacts: Path) -> Result:
    script, kind = TARGETS[name]
    corpus = (args.corpus / name) if args.corpus else work / f"corpus-{name}"
    seeds = write_corpus(corpus, kind)
    prefix = artifacts / f"{name}-"
    log_path = work / f"{name}.log"
    command = [
        sys.executable,
        str(HERE / script),
        f"-max_total_time={args.seconds}",
        f"-timeout={args.timeout}",
        f"-rss_limit_mb={args.rss_limit_mb}",
        f"-artifact_prefix={prefix}",
        "-print_final_stats=1",
        str(corpus),
    ]
    print(f"[{name}] {seeds} seeds, {args.seconds} s: {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    note = ""
    with log_path.open("w") as log:
        try:
            # Loading the seed corpus counts towards -max_total_time only once it is done:
            # allow for it, then call the run hung.
            process = subprocess.run(
                command,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=args.seconds * 2 + 300,
                check=False,
            )
            returncode = process.returncode
        except subprocess.TimeoutExpired:
            returncode, note = -1, "the fuzzer did not stop in time (killed)"
    result = Result(name, returncode, time.monotonic() - started, seeds, note=note)
    text = log_path.read_text(errors="replace")
    _parse(text, result)
    result.artifacts = tuple(sorted(artifacts.glob(f"{name}-*")))
    if not result.ok:
        print(f"[{name}] FAILED (exit {returncode}); the end of its log:", file=sys.stderr)
        lines = [ln for ln in text.splitlines() if not ln.startswith("INFO: Instrumenting")]
        print("\n".join(lines[-80:]), file=sys.stderr, flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="fuzzing time per target")
    parser.add_argument("--timeout", type=int, default=10, help="seconds per input: a hang")
    parser.add_argument("--rss-limit-mb", type=int, default=2048)
    parser.add_argument(
        "--targets", nargs="+", choices=sorted(TARGETS), default=list(TARGETS), metavar="TARGET"
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        help="keep each target's corpus in DIR/<target> (default: a temp dir)",
    )
    parser.add_argument(
        "--artifacts", type=Path, help="where failing inputs go (default: a new temp dir)"
    )
    args = parser.parse_args(argv)
    artifacts = args.artifacts or Path(tempfile.mkdtemp(prefix="kmipd-fuzz-artifacts-"))
    artifacts.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="kmipd-fuzz-run-") as tmp:
        try:
            for name in args.targets:
                results.append(run_target(name, args, Path(tmp), artifacts))
        except SeedsMissing as exc:
            print(f"fuzz: {exc}", file=sys.stderr)
            return 2
    print("\nfuzz summary")
    for r in results:
        status = "ok" if r.ok else "FAILED"
        print(
            f"  {r.target:8} {status:6} {r.executions} executions in {r.seconds:.0f} s "
            f"({r.exec_per_s:.0f}/s), corpus {r.corpus} (from {r.seeds} seeds), cov {r.coverage}"
            + (f"; {r.note}" if r.note else "")
        )
        for path in r.artifacts:
            print(f"    failing input: {path}")
    if all(r.ok for r in results):
        if not any(artifacts.iterdir()) and args.artifacts is None:
            artifacts.rmdir()
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
