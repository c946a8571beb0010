#!/usr/bin/env python3
"""Run the README's examples and keep the outputs it quotes real.

    python3 tools/readme.py            # run every example; exit 1 if one fails
                                       # or a quoted output is stale
    python3 tools/readme.py --update   # run them and rewrite the quoted outputs
    python3 tools/readme.py --list     # the examples found

What counts as an example (README.md at the repository root):

* a fenced ```python block: run with ``python3`` from the repository root
  (this checkout's ``minios`` first on the path, ``PYTHONBREAKPOINT=0`` so a
  ``add_break`` without an action runs through); it must exit 0.
* a fenced ```python block right after the line ``<!-- readme: pytest -->``:
  a test file, run with pytest (and the minios plugin); it must pass.
* an indented block whose first line starts with ``$ ``: a shell command
  (``\\`` continues it on the next line) and, below it, the output it
  quotes. It is run with bash from the repository root, stdout and stderr
  together as a terminal shows them; it must exit 0, and its output must
  match the quoted one.

Outputs are compared with every number masked and runs of blanks squeezed:
timings, addresses, frame numbers and page counts change with the host's
speed and with the toolchain that built userland/, while a changed layout,
a new or missing line, or reworded text means the README is stale (then run
``--update`` and read the diff). ``--update`` writes the output exactly as
the run printed it, with two edits that keep it readable anywhere: the
checkout's path is dropped (``minios/debug.py``, not
``/home/me/minios/minios/debug.py``), and the commands that a ``printf
'...' |`` feeds to pdb are shown after each ``(Pdb)`` prompt, as a terminal
echoes them.

tests/test_readme.py runs each example as one test.
"""
from __future__ import annotations

import argparse
import difflib
import importlib.metadata
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TIMEOUT = 300
PYTEST_MARK = "<!-- readme: pytest -->"


@dataclass
class Example:
    """One example: ``kind`` is "python", "pytest" or "shell"; ``code`` the
    program or command; ``output`` the quoted output (shell only), and
    ``out_lines`` the README's line range [start, end) that holds it."""
    kind: str
    line: int                   # 1-based line of the block's first line
    code: str
    output: str = ""
    out_lines: tuple[int, int] = (0, 0)
    name: str = ""              # kind-N, N counting the examples of that kind


def examples(text: str) -> list[Example]:
    """Every example in README text, in order."""
    lines = text.split("\n")
    out: list[Example] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == "```python":
            j = i + 1
            while lines[j].strip() != "```":
                j += 1
            kind = "pytest" if i > 0 and lines[i - 1].strip() == PYTEST_MARK else "python"
            out.append(Example(kind, i + 1, "\n".join(lines[i + 1:j]) + "\n"))
            i = j + 1
            continue
        if line.startswith("    $ ") and (i == 0 or not lines[i - 1].strip()):
            cmd = [line[6:]]
            j = i + 1
            while cmd[-1].endswith("\\"):
                cmd.append(lines[j][4:])
                j += 1
            start = j
            while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
                j += 1
            while j > start and not lines[j - 1].strip():
                j -= 1
            quoted = "\n".join(x[4:] for x in lines[start:j])
            out.append(Example("shell", i + 1, "\n".join(cmd), quoted, (start, j)))
            i = j
            continue
        i += 1
    seen: dict[str, int] = {}
    for ex in out:
        seen[ex.kind] = seen.get(ex.kind, 0) + 1
        ex.name = f"{ex.kind}-{seen[ex.kind]}"
    return out


def _env(kind: str) -> dict[str, str]:
    """This checkout's minios first; python examples run through their
    breakpoints (a shell example may drive pdb on purpose)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTHONBREAKPOINT", None)
    if kind != "shell":
        env["PYTHONBREAKPOINT"] = "0"
    env["PYTHONUNBUFFERED"] = "1"          # pdb's prompts in order with the guest's output
    return env


def _plugin_installed() -> bool:
    return any(ep.value == "minios.plugin"
               for ep in importlib.metadata.entry_points(group="pytest11"))


def _echo_pdb(out: str, cmd: str) -> str:
    """Show the commands a ``printf '...' |`` feeds to pdb after its
    prompts, as a terminal would echo them."""
    m = re.match(r"printf '([^']*)'", cmd)
    if m is None or "(Pdb) " not in out:
        return out
    fed = m.group(1).split("\\n")
    parts = out.split("(Pdb) ")
    text = parts[0]
    for n, part in enumerate(parts[1:]):
        text += "(Pdb) " + (fed[n] + "\n" if n < len(fed) else "") + part
    return text


def run(ex: Example) -> tuple[int, str]:
    """Run one example; (exit status, output as the README would quote it)."""
    env = _env(ex.kind)
    if ex.kind == "shell":
        p = subprocess.run(["bash", "-c", ex.code], cwd=ROOT, env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=TIMEOUT)
        out = p.stdout.decode(errors="replace").replace(str(ROOT) + "/", "")
        return p.returncode, _echo_pdb(out, ex.code).rstrip("\n")
    (ROOT / "build").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "build", prefix="readme-") as d:
        if ex.kind == "python":
            f = Path(d) / "example.py"
            f.write_text(ex.code)
            cmd = [sys.executable, str(f)]
        else:
            f = Path(d) / "test_readme_example.py"
            f.write_text(ex.code)
            (Path(d) / "pytest.ini").write_text("[pytest]\n")       # not the repository's
            cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                   "--rootdir", d, "-c", str(Path(d) / "pytest.ini"), str(f)]
            if not _plugin_installed():
                cmd[3:3] = ["-p", "minios.plugin"]
        p = subprocess.run(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT)
    return p.returncode, p.stdout.decode(errors="replace").rstrip("\n")


def masked(text: str) -> list[str]:
    """What the comparison sees: numbers masked, blanks squeezed."""
    text = re.sub(r"0x[0-9a-fA-F]+|\d+(\.\d+)?", "#", text)
    return [" ".join(line.split()) for line in text.strip("\n").split("\n")]


def stale(ex: Example, got: str) -> str:
    """A diff of the quoted against the real output ("" if they agree)."""
    a, b = masked(ex.output), masked(got)
    if a == b:
        return ""
    return "\n".join(difflib.unified_diff(ex.output.split("\n"), got.split("\n"),
                                          "README (quoted)", "now", lineterm=""))


def update(text: str, outputs: dict[int, str]) -> str:
    """README text with each shell example's quoted output replaced by
    ``outputs[line]``."""
    lines = text.split("\n")
    for ex in sorted(examples(text), key=lambda e: -e.line):
        if ex.kind != "shell" or ex.line not in outputs:
            continue
        new = [("    " + x if x else "") for x in outputs[ex.line].split("\n")]
        lines[ex.out_lines[0]:ex.out_lines[1]] = new
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--update", action="store_true", help="rewrite the quoted outputs")
    ap.add_argument("--list", action="store_true", help="list the examples and stop")
    a = ap.parse_args(argv)
    text = README.read_text()
    found = examples(text)
    if a.list:
        for ex in found:
            print(f"{ex.name}: {ex.code.splitlines()[0]}")
        return 0
    bad = 0
    outputs = {}
    for ex in found:
        status, out = run(ex)
        if status != 0:
            print(f"{ex.name}: exit status {status}\n{out[-3000:]}")
            bad += 1
            continue
        if ex.kind == "shell":
            outputs[ex.line] = out
            diff = stale(ex, out)
            if diff and not a.update:
                print(f"{ex.name}: the quoted output is stale (tools/readme.py --update)\n{diff}")
                bad += 1
        print(f"{ex.name}: ok")
    if a.update:
        new = update(text, outputs)
        if new != text:
            README.write_text(new)
            print("README.md: outputs rewritten")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
