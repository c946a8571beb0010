"""Trace text back into events: the pytest plugin's ``result.trace`` and
``Machine.trace_events()``."""
from __future__ import annotations

import re

_PID = r"\[pid (\d+)\] "
_RE_SYSCALL = re.compile(_PID + r"([a-z_0-9]+)\((.*)\) = (.+)$")
_RE_UNFINISHED = re.compile(_PID + r"([a-z_0-9]+)\((.*?)(?:,  | )<unfinished \.\.\.>$")
_RE_RESUMED = re.compile(_PID + r"<\.\.\. ([a-z_0-9]+) resumed>(.*)\) = (.+)$")
_RE_FAULT = re.compile(_PID + r"page fault at (0x[0-9a-f]+) ip (0x[0-9a-f]+) \(([^)]*)\) -> (.*)$")
_RE_FORK = re.compile(_PID + r"fork: (\d+) tables shared, (\d+) copied \((\d+) us\)"
                      r"(?:, child pid (\d+))?")
_RE_SIGNAL = re.compile(_PID + r"--- (SIG\w+|\d+) (\{.*\}) ---$")
_RE_EXIT = re.compile(_PID + r"\+\+\+ (exited with (\d+)|killed by (\S+)( \(core dumped\))?) \+\+\+$")
_RE_SCHED = re.compile(r"\[sched\] (?:pid (\d+)|-) -> pid (\d+) \((.*)\)$")
_RE_RESULT = re.compile(r"(-?\d+|0x[0-9a-f]+|\?)(?: (E[A-Z0-9]+) \((.*)\))?(?: \(.*\))?$")


def split_args(s: str) -> list[str]:
    """Split a trace line's argument list at top-level commas (quotes,
    brackets and braces respected)."""
    out, depth, cur, q, esc = [], 0, [], False, False
    for ch in s:
        if q:
            cur.append(ch)
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                q = False
            continue
        if ch == '"':
            q = True
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    last = "".join(cur).strip()
    if last or out:
        out.append(last)
    return out


def _parse_result(s: str) -> tuple[int | None, str | None]:
    m = _RE_RESULT.match(s.strip())
    if not m:
        return None, None
    if m.group(1) == "?":
        return None, m.group(2)
    v = m.group(1)
    n = int(v, 16) if v.startswith("0x") else int(v)
    return n, m.group(2)


def parse(text: str) -> list[dict]:
    """Trace text -> events, in order. Every event has ``kind`` and ``pid``:

    * ``syscall``: ``name``, ``args`` (list of argument strings as printed),
      ``result`` (int, or None for ``?``), ``errno`` (``"ENOENT"`` or None),
      ``line``. A call that blocked becomes one event when it resumes (its
      ``args`` joined), with ``blocked=True``.
    * ``fault``: ``addr``, ``ip`` (ints), ``reason`` (``"user write,
      protection"``), ``note`` (what the kernel did).
    * ``fork``: ``shared``, ``copied``, ``us``, ``child``.
    * ``signal``: ``signal`` (name), ``info``; ``exit``: ``status`` or
      ``signal``; ``sched``: ``from``, ``pid`` (the task switched to), ``why``.
    Lines that are not trace lines (a program's own stderr) are skipped."""
    events: list[dict] = []
    pending: dict[int, dict] = {}
    for line in text.splitlines():
        m = _RE_SYSCALL.match(line)
        if m and not line.startswith("[pid " + m.group(1) + "] <..."):
            res, err = _parse_result(m.group(4))
            events.append({"kind": "syscall", "pid": int(m.group(1)), "name": m.group(2),
                           "args": split_args(m.group(3)), "result": res, "errno": err,
                           "line": line})
            continue
        m = _RE_UNFINISHED.match(line)
        if m:
            ev = {"kind": "syscall", "pid": int(m.group(1)), "name": m.group(2),
                  "args": split_args(m.group(3)), "result": None, "errno": None,
                  "blocked": True, "line": line}
            pending[ev["pid"]] = ev
            events.append(ev)
            continue
        m = _RE_RESUMED.match(line)
        if m:
            pid = int(m.group(1))
            ev = pending.pop(pid, None)
            if ev is None:
                ev = {"kind": "syscall", "pid": pid, "name": m.group(2), "args": [],
                      "blocked": True, "line": line}
                events.append(ev)
            rest = m.group(3)
            more = split_args(rest.lstrip(", "))
            if rest.lstrip().startswith("=>") and ev["args"] and more:
                ev["args"] = ev["args"][:-1] + [ev["args"][-1] + " " + more.pop(0)]
            ev["args"] = ev["args"] + more
            ev["result"], ev["errno"] = _parse_result(m.group(4))
            ev["line"] += "\n" + line
            continue
        m = _RE_FAULT.match(line)
        if m:
            events.append({"kind": "fault", "pid": int(m.group(1)), "addr": int(m.group(2), 16),
                           "ip": int(m.group(3), 16), "reason": m.group(4),
                           "note": m.group(5), "line": line})
            continue
        m = _RE_FORK.match(line)
        if m:
            events.append({"kind": "fork", "pid": int(m.group(1)), "shared": int(m.group(2)),
                           "copied": int(m.group(3)), "us": int(m.group(4)),
                           "child": int(m.group(5)) if m.group(5) else None, "line": line})
            continue
        m = _RE_SIGNAL.match(line)
        if m:
            events.append({"kind": "signal", "pid": int(m.group(1)), "signal": m.group(2),
                           "info": m.group(3), "line": line})
            continue
        m = _RE_EXIT.match(line)
        if m:
            events.append({"kind": "exit", "pid": int(m.group(1)),
                           "status": int(m.group(3)) if m.group(3) is not None else None,
                           "signal": m.group(4), "core": bool(m.group(5)), "line": line})
            continue
        m = _RE_SCHED.match(line)
        if m:
            events.append({"kind": "sched", "from": int(m.group(1)) if m.group(1) else None,
                           "pid": int(m.group(2)), "why": m.group(3), "line": line})
    return events
