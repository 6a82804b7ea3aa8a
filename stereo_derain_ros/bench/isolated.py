"""Run one measurement in a child process with a memory cap, so that running out kills only it.

A benchmark row that does not fit (e.g. unbanded parallax attention at 1280×720) must be
reported as such while the rest of the run goes on. The child caps its own address space with
RLIMIT_AS, so an oversized allocation fails inside the child instead of driving the shared
machine into swap or waking the kernel's OOM killer. A fresh process per row also gives an
honest peak-RSS figure for that row alone.

Run as `python -m stereo_derain_ros.bench.isolated MODULE:FUNCTION SPEC_JSON`: the child calls
FUNCTION(spec) and prints its dict result as one JSON line after RESULT_MARKER.
"""

import importlib
import json
import os
from pathlib import Path
import resource
import signal
import subprocess
import sys

RESULT_MARKER = '@@stereo-derain-bench-result@@ '
OUT_OF_MEMORY = 'does_not_fit'
OK = 'ok'
FAILED = 'failed'

_OOM_MESSAGES = ("can't allocate memory", 'out of memory', 'not enough memory',
                 'cannot allocate memory', 'failed to allocate')


def is_out_of_memory(error: BaseException) -> bool:
    """Tell whether an exception raised while measuring means the row did not fit in memory."""
    if isinstance(error, MemoryError):
        return True
    return any(text in str(error).lower() for text in _OOM_MESSAGES)


def _package_root() -> str:
    return str(Path(__file__).resolve().parent.parent.parent)


def run_isolated(target: str, spec: dict, memory_limit_bytes: int | None,
                 timeout_s: float) -> dict:
    """Run `target` (MODULE:FUNCTION) on `spec` in a child; return its result dict.

    The result always has `status`: `ok`, `does_not_fit` (ran out of the memory cap) or `failed`
    (with `error`, one line).
    """
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (_package_root(), env.get('PYTHONPATH')) if p)
    if memory_limit_bytes is not None:
        env['STEREO_DERAIN_BENCH_MEMORY_LIMIT'] = str(int(memory_limit_bytes))
    command = [sys.executable, '-m', __name__, target, json.dumps(spec)]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, env=env,
                                   timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {'status': FAILED, 'error': f'timed out after {timeout_s:.0f} s'}
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    if completed.returncode in (-signal.SIGKILL, -signal.SIGSEGV, -signal.SIGABRT) or \
            is_out_of_memory(RuntimeError(completed.stderr)):
        if memory_limit_bytes is not None or completed.returncode == -signal.SIGKILL:
            return {'status': OUT_OF_MEMORY,
                    'error': f'child ended with status {completed.returncode} near the memory cap'}
    last_line = (completed.stderr.strip().splitlines() or ['no output'])[-1]
    return {'status': FAILED, 'error': f'exit status {completed.returncode}: {last_line}'}


def _limit_memory() -> None:
    limit = os.environ.get('STEREO_DERAIN_BENCH_MEMORY_LIMIT')
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))


def main(argv: list[str]) -> int:
    target, spec_json = argv
    _limit_memory()
    module_name, function_name = target.split(':')
    function = getattr(importlib.import_module(module_name), function_name)
    try:
        result = {'status': OK, **function(json.loads(spec_json))}
    except Exception as error:  # noqa: BLE001 - every failure becomes a reported row
        status = OUT_OF_MEMORY if is_out_of_memory(error) else FAILED
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        result = {'status': status, 'error': f'{type(error).__name__}: {first_line}'[:300]}
    print(RESULT_MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
