"""``Sandbox.call_async``: the event-loop path the server uses for registered tools.

It takes only the common case (an idle pooled worker that has already compiled the source) and
declines everything else with None, leaving it to ``call`` in a thread. These tests pin both halves
with real workers: what it answers is what ``call`` answers, and every way a call can end (error,
limit, timeout, death, cancellation) leaves a pool that still answers.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import anyio
import pytest

from server.config import Limits
from server.errors import LimitExceeded, ToolRaised
from server.models import CallOutcome
from server.sandbox import Sandbox

pytestmark = pytest.mark.anyio

LIMITS = Limits(cpu_seconds=5.0, wall_seconds=10.0, memory_mib=128)
OK = "def ok(x: int) -> int:\n    return x + 1\n"
SPIN = "def spin(n: int) -> int:\n    while n:\n        pass\n    return 0\n"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def box():
    with Sandbox(LIMITS, pool_size=1) as sandbox:
        sandbox.start()
        yield sandbox


def pids(box: Sandbox) -> set[int]:
    with box._cond:
        return {worker.pid for worker in box._live}


def wait_for_new_worker(box: Sandbox, old: set[int], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not (pids(box) and pids(box).isdisjoint(old)):
        assert time.monotonic() < deadline, "no replacement worker started"
        time.sleep(0.01)


async def test_a_warm_call_is_answered_on_the_loop_with_what_call_answers(box):
    assert box.call(OK, "ok", {"x": 1}).value == 2  # compiles it in the worker
    for x in range(20):
        assert await box.call_async(OK, "ok", {"x": x}) == CallOutcome(value=x + 1, printed="")
    printed = "def p(s: str) -> str:\n    print('saw', s)\n    return s.upper()\n"
    box.call(printed, "p", {"s": "a"})
    assert await box.call_async(printed, "p", {"s": "hé"}) == CallOutcome(value="HÉ", printed="saw hé\n")


async def test_it_declines_what_it_does_not_handle_and_changes_nothing(box):
    assert await box.call_async(OK, "ok", {"x": 1}) is None  # no worker has compiled it yet
    box.call(OK, "ok", {"x": 1})
    other_memory = Limits(cpu_seconds=5.0, wall_seconds=10.0, memory_mib=96)
    assert await box.call_async(OK, "ok", {"x": 1}, limits=other_memory) is None  # needs a dedicated worker
    assert await box.call_async(OK, "ok", {"x": 1}) == CallOutcome(value=2, printed="")


async def test_errors_come_back_as_from_call_and_the_worker_is_kept(box):
    source = "def div(a: int) -> float:\n    print('dividing')\n    return 1 / a\n"
    box.call(source, "div", {"a": 1})
    before = pids(box)
    with pytest.raises(ToolRaised) as info:
        await box.call_async(source, "div", {"a": 0})
    assert str(info.value) == "ZeroDivisionError: division by zero (line 3)"
    assert info.value.printed == "dividing\n"
    assert pids(box) == before
    assert (await box.call_async(source, "div", {"a": 4})).value == 0.25


async def test_a_limit_hit_is_reported_and_the_worker_recycled(box):
    source = "def big(n: int) -> str:\n    return 'x' * n\n"
    box.call(source, "big", {"n": 1})
    before = pids(box)
    with pytest.raises(LimitExceeded) as info:
        await box.call_async(source, "big", {"n": 2 * 1024 * 1024})
    assert info.value.kind == "result"
    wait_for_new_worker(box, before)
    assert box.call(OK, "ok", {"x": 41}).value == 42


async def test_the_wall_clock_limit_kills_a_runaway_and_the_pool_recovers(box):
    box.call(SPIN, "spin", {"n": 0})
    before = pids(box)
    tight = Limits(cpu_seconds=5.0, wall_seconds=0.5, memory_mib=128)
    started = time.monotonic()
    with pytest.raises(LimitExceeded) as info:
        await box.call_async(SPIN, "spin", {"n": 1}, limits=tight)
    assert info.value.kind == "timeout" and str(info.value) == "timed out after 0.5 s"
    assert time.monotonic() - started < 3
    assert not os.path.exists(f"/proc/{next(iter(before))}")
    assert box.call(OK, "ok", {"x": 41}).value == 42
    assert pids(box).isdisjoint(before)


async def test_a_worker_killed_during_the_call_is_reported_as_a_crash(box):
    box.call(SPIN, "spin", {"n": 0})
    (pid,) = pids(box)
    threading.Timer(0.3, os.kill, (pid, signal.SIGKILL)).start()
    with pytest.raises(LimitExceeded) as info:
        await box.call_async(SPIN, "spin", {"n": 1})
    assert info.value.kind == "crash" and "SIGKILL" in str(info.value)
    assert box.call(OK, "ok", {"x": 41}).value == 42


async def test_a_cancelled_call_kills_its_worker_and_the_pool_recovers(box):
    box.call(SPIN, "spin", {"n": 0})
    before = pids(box)
    with anyio.move_on_after(0.3) as scope:
        await box.call_async(SPIN, "spin", {"n": 1})
    assert scope.cancelled_caught
    wait_for_new_worker(box, before)  # the spinning worker's reply would be out of step: it is gone
    assert box.call(OK, "ok", {"x": 41}).value == 42


async def test_a_worker_that_died_while_idle_is_not_used(box):
    box.call(OK, "ok", {"x": 1})
    (pid,) = pids(box)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}/status") and "State:\tZ" not in open(f"/proc/{pid}/status").read():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert await box.call_async(OK, "ok", {"x": 1}) is None  # declined, not a false "crash"
    assert box.call(OK, "ok", {"x": 41}).value == 42


async def test_many_concurrent_calls_each_get_their_own_answer():
    with Sandbox(LIMITS, pool_size=2) as sandbox:
        sandbox.start()
        sandbox.call(OK, "ok", {"x": 0})
        results: dict[int, int] = {}

        async def one(x: int) -> None:
            outcome = await sandbox.call_async(OK, "ok", {"x": x})
            if outcome is None:  # no idle warm worker at this moment: what the server does next
                outcome = await anyio.to_thread.run_sync(sandbox.call, OK, "ok", {"x": x})
            results[x] = outcome.value

        async with anyio.create_task_group() as tg:
            for x in range(50):
                tg.start_soon(one, x)
        assert results == {x: x + 1 for x in range(50)}
