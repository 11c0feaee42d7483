"""Run a model-written input generator and program in the sandbox, and read back plain data.

Self-play programs and their generators are untrusted model output: they run only here, through
perfrepro.execution.sandbox, in a probe script (`PROBE_SOURCE`) that reads its request as JSON on
stdin and writes one JSON result to the result pipe. Every value crosses back as ``repr`` text and
is read with ``ast.literal_eval`` (never pickle: a sandboxed program could forge the result, and
unpickling forged bytes would run code here). A value that is not plain data (ints, floats,
strings, bytes, bools, None and tuples, lists, dicts and sets of them) is a failure.

Each generator or program call has its own alarm (`call_timeout_s`); the sandbox's wall limit is
the backstop for code that swallows the alarm. Two modes:
- ``inputs``: seed ``random`` for each test (`perfrepro.optimization.inputs.test_seed`), call
  ``generate_input(size)`` (or ``(size, lid, cid)``, ENAMEL's signature) twice (a generator that
  ignores the seed fails: its inputs would change run to run), then the program's entry point on
  a copy of the arguments; the tests with their answers, or the first failure;
- ``outputs``: the program on given argument tuples (another program's inputs); one token per
  input: its output, the exception's type, or ``timeout`` (semantic dedup compares these).
"""

from __future__ import annotations

import ast
import json
import math
from typing import Any, Sequence

from perfrepro.execution import sandbox
from perfrepro.execution.sandbox import Limits

PROBE_FILE = "probe.py"
MAX_REPR_CHARS = 200_000  # one value; the result pipe holds 1 MB in all

PROBE_SOURCE = r'''
# perfrepro self-play probe: runs model-written code, reports plain data (repr text) on the result pipe.
import copy, io, json, os, random, signal, string, sys

_write, _fd = os.write, int(os.environ["PERFREPRO_RESULT_FD"])
_stdout = sys.stdout
MAX = int(sys.argv[1])


class _Timeout(BaseException):
    pass


def _expired(signum, frame):
    raise _Timeout()


signal.signal(signal.SIGALRM, _expired)


def _report(result):
    _write(_fd, (json.dumps(result) + "\n").encode())
    os._exit(0)


def _call(function, args, limit):
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return function(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _text(value):
    text = repr(value)
    if len(text) > MAX:
        raise ValueError("value larger than %d characters" % MAX)
    return text


def _load(code, name, entry, scope=None):
    namespace = scope if scope is not None else {"__name__": name}
    exec(compile(code, "<" + name + ">", "exec"), namespace)
    if entry not in namespace or not callable(namespace[entry]):
        raise NameError("defines no function " + repr(entry))
    return namespace[entry]


def _failure(step, exc, where=None):
    kind = "timeout" if isinstance(exc, _Timeout) else "raise"
    message = "no result within the time limit" if kind == "timeout" else "%s: %s" % (type(exc).__name__, str(exc)[:300])
    _report({"error": {"step": step, "kind": kind, "message": message, "where": where}})


def _load_program(request):
    try:
        return _load(request["program"], "program", request["entry_point"])
    except BaseException as exc:
        _failure("program", exc, "loading")


def _inputs(request):
    limit = request["call_timeout_s"]
    try:
        scope = {"__name__": "__generator__", "random": random, "string": string}
        generate = _load(request["generator"], "generator", "generate_input", scope)
        arity = getattr(getattr(generate, "__code__", None), "co_argcount", 1)
    except BaseException as exc:
        _failure("generator", exc, "loading")
    program = _load_program(request)
    tests = []
    for test in request["tests"]:
        where = "size %d input %d" % (test["size"], test["cid"])
        try:
            call = (test["size"], test["level"], test["cid"]) if arity >= 3 else (test["size"],)
            texts = []
            for _ in range(2):  # twice: the same seed must give the same input
                random.seed(test["seed"])
                args = _call(generate, call, limit)
                args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
                texts.append(_text(args))
            if texts[0] != texts[1]:
                raise ValueError("not deterministic: the same seed gave two different inputs")
            args_text = texts[0]
        except BaseException as exc:
            _failure("generator", exc, where)
        try:
            output = _call(program, copy.deepcopy(args), limit)
            output_text = _text(output)
        except BaseException as exc:
            _failure("program", exc, where)
        tests.append({"level": test["level"], "cid": test["cid"], "size": test["size"], "args": args_text,
                      "answer": output_text})
    _report({"tests": tests})


def _outputs(request):
    import ast
    program = _load_program(request)
    tokens = []
    for text in request["inputs"]:
        try:
            tokens.append({"ok": _text(_call(program, ast.literal_eval(text), request["call_timeout_s"]))})
        except _Timeout:
            tokens.append({"timeout": True})
        except BaseException as exc:
            tokens.append({"raise": type(exc).__name__})
    _report({"tokens": tokens})


def _main():
    request = json.loads(sys.stdin.read())
    sys.stdout = io.StringIO()  # a chatty program must not hit the sandbox's output cap
    sys.stdin = io.StringIO("")
    (_inputs if request["mode"] == "inputs" else _outputs)(request)


_main()
'''


class ProbeError(ValueError):
    """A probe result that cannot be read back as plain data."""


def run_probe(request: dict, limits: Limits) -> dict:
    """Run one probe request in the sandbox; returns the probe's result dict, or
    ``{"error": {"step": "sandbox", "kind": <status>, "message": ...}}`` when the run itself failed
    (the whole run timed out, ran out of memory, or wrote no readable result)."""
    result = sandbox.run(
        [*sandbox.python_argv(), "-P", PROBE_FILE, str(MAX_REPR_CHARS)],
        stdin=json.dumps(request).encode("utf-8"),
        limits=limits,
        env=sandbox.python_env(),
        files={**sandbox.python_files(), PROBE_FILE: PROBE_SOURCE},
        channel=True,
    )
    if result.status != "ok":
        return {"error": {"step": "sandbox", "kind": result.status,
                          "message": (result.error or result.status) + _tail(result.stderr_tail)}}
    lines = result.channel.decode("utf-8", errors="replace").strip().splitlines()
    try:
        row = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        row = None
    if not isinstance(row, dict) or not ({"tests", "tokens", "error"} & set(row)):
        return {"error": {"step": "sandbox", "kind": "crash",
                          "message": "the probe wrote no result (the program exited or closed the pipe)"
                                     + _tail(result.stderr_tail)}}
    return row


def _tail(text: str) -> str:
    lines = text.strip().splitlines()[-2:]
    return (" | " + " / ".join(lines)) if lines else ""


def run_probe_item(limits: Limits, request: dict) -> dict:
    """An executor's unit of work: one probe request (picklable with functools.partial)."""
    return run_probe(request, limits)


def probe_limits(call_timeout_s: float, calls: int, memory_mb: int) -> Limits:
    """Sandbox limits for a probe of `calls` calls: each call has its own alarm, the whole run a
    wall limit that leaves room for all of them (the backstop for code that swallows the alarm)."""
    wall = call_timeout_s * max(1, calls) + 10.0
    return Limits(timeout_s=wall, memory_mb=memory_mb)


# -- reading values back ------------------------------------------------------------------

_PLAIN_SCALARS = (int, float, complex, str, bytes, bool, type(None))


def plain_value(text: str, what: str) -> Any:
    """The value a probe reported as repr `text`; ProbeError when it is not plain data."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise ProbeError(f"{what} is not plain data ({type(exc).__name__}: {text[:80]!r})") from None


def canonical(value: Any) -> str:
    """A text that equal outputs share: floats to 10 significant digits (a rewrite may sum in
    another order), containers recursively, dicts and sets in sorted order."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str, bytes)):
        return repr(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else format(value, ".10g") + "f"
    if isinstance(value, complex):
        return f"complex({canonical(value.real)},{canonical(value.imag)})"
    if isinstance(value, (list, tuple)):
        inner = ",".join(canonical(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    if isinstance(value, dict):
        return "{" + ",".join(sorted(f"{canonical(k)}:{canonical(v)}" for k, v in value.items())) + "}"
    if isinstance(value, (set, frozenset)):
        return "set{" + ",".join(sorted(canonical(v) for v in value)) + "}"
    return repr(value)


def output_signature(tokens: Sequence[dict]) -> tuple[str, ...]:
    """One text per input of an ``outputs`` probe: the canonical output, ``!raise <Type>`` or ``!timeout``."""
    signature = []
    for token in tokens:
        if "ok" in token:
            try:
                signature.append(canonical(plain_value(token["ok"], "an output")))
            except ProbeError:
                signature.append("!not-plain")
        elif token.get("timeout"):
            signature.append("!timeout")
        else:
            signature.append(f"!raise {token.get('raise', '?')}")
    return tuple(signature)
