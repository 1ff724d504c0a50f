"""Instructions per event of ingest with scoring, counted by valgrind (callgrind).

Wall-clock figures on a shared machine move by half from one hour to the next
(see docs/service.md), so a change worth a few per cent cannot be seen in
them. An instruction count is the same for the same code and data whatever
else the machine is doing, so two builds can be compared on any day. It is
not time (a cache miss costs more than an instruction, C code in a library is
counted like the interpreter's), so a count says which build does less work;
the wall-clock benchmarks still say how fast.

What is counted: ``bench_ingest``'s import clock on SQLite (demo events in
time order, in batches of 1,000, each applied at one ``now`` after the last
event, through ``Ingestor.apply``), only the batches measured, after the
profiles and one batch of warm-up. ``--clock replay`` counts its replay clock
instead (each batch at its latest event: time moves, as in a live service).
Beside it, in the same run, the baseline: the same batches inserted as plain
rows into a bare table (``bench_store.plain_insert``). ``--against DIR``
counts the same for the checkout in DIR (its ``src``) too, to compare two
builds; the sample is made once by this checkout and handed to both.

Needs valgrind, gcc and valgrind's headers (``valgrind/callgrind.h``), which
this machine has: collection is switched on and off around the measured
batches by a client request in a small C helper compiled for the run.
Counting runs the interpreter about 50 times slower: a run takes minutes.

Run: ``python -m benchmarks.bench_instructions [--batches N] [--clock replay] [--against DIR]``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from leadqual.facts.types import Event

ROOT = Path(__file__).resolve().parent.parent
BATCH = 1000
HELPER = r"""
#include <valgrind/callgrind.h>
void lq_toggle_collect(void) { CALLGRIND_TOGGLE_COLLECT; }
"""


@dataclass
class Counted:
    build: str
    ingest: int
    plain: int
    events: int


def _helper(folder: Path) -> Path:
    source, library = folder / "toggle.c", folder / "libtoggle.so"
    source.write_text(HELPER)
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library


def _count(src: Path, sample: Path, helper: Path, work: str, batches: int, out: Path) -> int:
    """Instructions of ``work`` (``import``, ``replay`` or ``plain``) run on ``src``'s
    leadqual."""
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=os.pathsep.join([str(src), str(ROOT)]))
    where = subprocess.run(
        [sys.executable, "-c", "import leadqual; print(leadqual.__file__)"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if not Path(where).resolve().is_relative_to(src.resolve()):
        raise SystemExit(f"leadqual comes from {where}, not from {src}")
    command = [
        "valgrind", "--tool=callgrind", "--collect-atstart=no", f"--callgrind-out-file={out}",
        sys.executable, "-m", "benchmarks.bench_instructions",
        "--child", work, str(sample), str(helper), str(batches),
    ]  # fmt: skip
    run = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode != 0 or found is None:
        raise SystemExit(f"counting {work} on {src} failed:\n{run.stdout}\n{run.stderr[-3000:]}")
    return int(found.group(1))


def child(work: str, sample: Path, helper: Path, batches: int) -> None:
    """Run under valgrind: the measured batches between two toggles of collection."""
    import ctypes

    from benchmarks.bench_store import plain_insert, plain_sqlite
    from leadqual.model.load import load_model
    from leadqual.service import Ingestor
    from leadqual.store import Store

    toggle = ctypes.CDLL(str(helper)).lq_toggle_collect
    profiles, events = pickle.loads(sample.read_bytes())
    parts = [events[i * BATCH : (i + 1) * BATCH] for i in range(batches + 1)]
    now = events[-1].at
    with tempfile.TemporaryDirectory(prefix="lq-bench-instructions-") as tmp:
        if work == "plain":
            connection = plain_sqlite(Path(tmp) / "plain.db")
            plain_insert(connection, parts[0])
            toggle()
            for part in parts[1:]:
                plain_insert(connection, part)
            toggle()
            connection.close()
            return
        replay = work == "replay"

        def applied_at(batch: Sequence[Event]) -> datetime:
            """replay: each batch at its latest event's time; import: all at one now."""
            return batch[-1].at if replay else now

        with Store.open(f"sqlite:///{Path(tmp) / 'ingest.db'}") as store:
            ingestor = Ingestor(store, load_model("b2b_example"))
            ingestor.apply(profiles, events[0].at if replay else now)
            ingestor.apply(parts[0], applied_at(parts[0]))
            toggle()
            for part in parts[1:]:
                ingestor.apply(part, applied_at(part))
            toggle()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=5, help="batches of 1,000 counted")
    parser.add_argument("--leads", type=int, default=3000)
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--against", type=Path, help="another checkout to count too")
    parser.add_argument(
        "--clock", choices=("import", "replay"), default="import",
        help="import: every batch at one now after the last event; replay: each at its latest",
    )  # fmt: skip
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        work, sample, helper, batches = args.child
        child(work, Path(sample), Path(helper), int(batches))
        return
    if shutil.which("valgrind") is None or shutil.which("gcc") is None:
        raise SystemExit("bench_instructions needs valgrind and gcc")
    if (args.batches + 1) * BATCH > args.events:
        raise SystemExit(f"--events must be at least {(args.batches + 1) * BATCH:,}")

    from benchmarks.bench_store import END
    from leadqual.demo.generate import generate_sample

    facts = generate_sample(leads=args.leads, accounts=args.accounts, events=args.events, end=END)
    events = sorted(facts.events, key=lambda e: (e.at, e.event_id))
    builds = [("this checkout", ROOT / "src")]
    if args.against is not None:
        builds.append((str(args.against), args.against.resolve() / "src"))
    with tempfile.TemporaryDirectory(prefix="lq-bench-instructions-") as tmp:
        folder = Path(tmp)
        sample = folder / "sample.pickle"
        sample.write_bytes(pickle.dumps(([*facts.leads, *facts.accounts], events)))
        helper = _helper(folder)
        Console(stderr=True).print("counting, two at a time (minutes under valgrind)…")
        with ThreadPoolExecutor(max_workers=2) as pool:
            jobs = {
                (name, work): pool.submit(
                    _count, src, sample, helper, work, args.batches, folder / f"{i}-{work}.out"
                )
                for i, (name, src) in enumerate(builds)
                for work in (args.clock, "plain")
            }
            done = {key: job.result() for key, job in jobs.items()}
    counted = [
        Counted(name, done[name, args.clock], done[name, "plain"], args.batches * BATCH)
        for name, _ in builds
    ]

    table = Table(
        title=f"Instructions: {args.batches} batches of {BATCH:,} demo events into SQLite "
        f"({args.clock} clock), after the profiles and one batch of warm-up"
    )
    for column in ("build", "ingest with scoring / event", "plain insert / event",
                   "ingest / plain"):  # fmt: skip
        table.add_column(column, justify="left" if column == "build" else "right")
    for c in counted:
        table.add_row(
            c.build, f"{c.ingest / c.events:,.0f}", f"{c.plain / c.events:,.0f}",
            f"{c.ingest / c.plain:.1f}",
        )  # fmt: skip
    Console(width=150).print(table)
    if len(counted) == 2:
        mine, other = counted
        print(
            f"this checkout runs {mine.ingest / other.ingest:.3f} times the instructions of "
            f"{other.build} for ingest with scoring"
        )


if __name__ == "__main__":
    main()
