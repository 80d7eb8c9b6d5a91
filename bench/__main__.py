"""Run every benchmark in bench/ and write bench/RESULTS.md with the machine's description.

A module has a docstring (the method), ``run()`` returning table rows, and optionally
``summary(rows) -> str``: one line printed after its table (its last line) and kept in
RESULTS.md."""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), "
            f"Python {platform.python_version()}")


def _table(rows: list[dict[str, object]]) -> str:
    if not rows:
        return "(no rows)\n"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def main(names: list[str]) -> int:
    """Run the named benchmarks (all ``*_bench.py`` without names) and write the results."""
    modules = names or sorted(p.stem for p in HERE.glob("*_bench.py"))
    sections = []
    for name in modules:
        module = importlib.import_module(f"bench.{name}")
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        rows = module.run()
        took = time.perf_counter() - started
        doc = (module.__doc__ or "").strip()
        # a module may end its output with one summary line of its own (``summary(rows)``)
        last = module.summary(rows) if hasattr(module, "summary") else ""
        sections.append(f"## {name}\n\n{doc}\n\n{_table(rows)}\n"
                        + (f"{last}\n\n" if last else "") + f"_took {took:.0f} s_\n")
        print(_table(rows), flush=True)
        if last:
            print(last, flush=True)
    header = (f"# Benchmark results\n\nWritten by `make bench` on "
              f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.\nMachine: {_machine()}.\n"
              "Figures are medians; ratios compare against baselines measured in the same run.\n")
    earlier = HERE / "RESULTS.md"
    if names and earlier.exists():  # some benchmarks only: the others' sections stay as they were
        text = earlier.read_text("utf-8")
        header = (text.split("\n## ", 1)[0].rstrip("\n") + f"\nRerun on "
                  f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({_machine()}): {', '.join(modules)}.\n")
        kept = _sections(text)
        kept.update({section.split("\n", 1)[0][3:]: section for section in sections})
        sections = [kept[name] for name in sorted(kept)]
    (HERE / "RESULTS.md").write_text(header + "\n" + "\n".join(sections), "utf-8")
    return 0


def _sections(text: str) -> dict[str, str]:
    """The ``## name`` sections of an earlier RESULTS.md, by name."""
    parts = text.split("\n## ")[1:]
    return {part.split("\n", 1)[0]: "## " + part.rstrip("\n") + "\n" for part in parts}


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
