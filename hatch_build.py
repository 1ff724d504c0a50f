"""Build hook: compile the evaluation engine with mypyc when a wheel is built.

``pip install .`` (a wheel) compiles the modules in :data:`COMPILED` to C
extensions with mypyc (part of mypy), from the same typed source: ingest with
scoring runs about a third fewer instructions, with the same results (CI runs
the engine's tests, the property tests and the store's tests against both
builds). ``pip install -e .`` (an editable install, for working on the code)
stays pure Python, so an edit takes effect at once.

When compiling fails (no C compiler, no Python headers), the wheel is pure
Python and the build says why; ``LEADQUAL_PURE_PYTHON=1`` asks for a pure wheel.
Which build is running: ``python -c "import leadqual.engine as e; print(e.compiled())"``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

COMPILED = (
    "leadqual/engine/decay.py",
    "leadqual/engine/engagement.py",
    "leadqual/engine/explain.py",
    "leadqual/engine/incremental.py",
    "leadqual/engine/memo.py",
    "leadqual/engine/operators.py",
    "leadqual/engine/output.py",
    "leadqual/engine/reference.py",
    "leadqual/engine/result.py",
    "leadqual/timetext.py",
    "leadqual/store/codec.py",
    "leadqual/store/statements.py",
    "leadqual/store/writer.py",
    "leadqual/service/ingest.py",
    "leadqual/store/state.py",
    "leadqual/jsontext.py",
)
"""The modules compiled (paths under ``src``): what evaluates and folds facts, the text
of instants it writes, the store's write path (the codec that checks and encodes each
fact, the log's append, the statements run on the driver's cursor, compact JSON, the rows
of qualifications and stage history) and the service's ingest, which drives them for
every write."""

FLAGS = ["--no-site-packages", "--ignore-missing-imports", "--follow-imports=silent"]
"""mypy's options for the compile: the installed packages are not looked at, so the build
is the same whatever the environment holds (other packages' types are ``Any``), and only
the compiled modules are checked (every module is checked by the gate,
``scripts/check``, with every package's types)."""

GROUP = "leadqual_engine"
"""The name of the shared library the compiled modules load (``leadqual_engine__mypyc``)."""

_SETUP = """\
from setuptools import setup
from mypyc.build import mypycify

setup(
    name="leadqual-engine",
    ext_modules=mypycify(
        {paths!r} + {flags!r},
        opt_level="3",
        debug_level="0",
        group_name={group!r},
        target_dir={target!r},
    ),
)
"""


class MypycBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        if os.environ.get("LEADQUAL_PURE_PYTHON", "") not in ("", "0"):
            self.app.display_info("leadqual: LEADQUAL_PURE_PYTHON is set: a pure Python wheel")
            return
        self.work = Path(tempfile.mkdtemp(prefix="leadqual-mypyc-"))
        try:
            built = self._compile()
        except (OSError, subprocess.CalledProcessError) as error:
            output = getattr(error, "stdout", "") or ""
            self.app.display_warning(
                f"leadqual: compiling the engine with mypyc failed ({error}); "
                f"building a pure Python wheel instead\n{output[-4000:]}"
            )
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        for path, target in built.items():
            build_data["force_include"][str(path)] = target
        self.app.display_info(f"leadqual: compiled {len(COMPILED)} engine modules with mypyc")

    def _compile(self) -> dict[Path, str]:
        """Run mypyc in a copy of the sources (its cache and generated C stay out of the
        project); the built extensions by their wheel paths."""
        src = Path(self.root) / "src"
        copy = self.work / "src"
        shutil.copytree(src / "leadqual", copy / "leadqual")
        setup = self.work / "setup.py"
        target = self.work / "c"
        setup.write_text(
            _SETUP.format(paths=list(COMPILED), flags=FLAGS, group=GROUP, target=str(target))
        )
        lib = self.work / "lib"
        command = [sys.executable, str(setup), "build_ext", "--build-lib", str(lib)]
        subprocess.run(
            [*command, "--build-temp", str(self.work / "tmp")],
            cwd=copy,
            check=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        built = {p: p.relative_to(lib).as_posix() for p in lib.rglob(f"*{suffix}")}
        expected = {f"{m.removesuffix('.py')}{suffix}" for m in COMPILED}
        missing = expected - set(built.values())
        if missing:
            raise OSError(f"mypyc built no {', '.join(sorted(missing))}")
        return built

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        work = getattr(self, "work", None)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
