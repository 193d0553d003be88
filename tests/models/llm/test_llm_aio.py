"""gpuflows.models.llm.aio.run: a coroutine's result from sync code, inside or outside a loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from gpuflows.models.llm import aio


async def _where() -> tuple[str, str]:
    return type(asyncio.get_running_loop()).__module__, threading.current_thread().name


def test_run_outside_a_loop_uses_this_thread_and_uvloop_when_installed() -> None:
    module, thread = aio.run(_where())
    assert thread == threading.current_thread().name
    uv = pytest.importorskip("uvloop")
    assert aio.loop_name() == "uvloop" and module.startswith(uv.__name__)


def test_run_inside_a_running_loop_uses_a_thread_of_its_own() -> None:
    async def outer() -> tuple[str, str]:
        return aio.run(_where())  # a Prefect task may call sync code from inside a loop

    _, thread = asyncio.run(outer())
    assert thread == "gpuflows-aio"


def test_run_propagates_the_coroutines_exception_unchanged() -> None:
    async def boom() -> None:
        raise KeyError("request r7")

    with pytest.raises(KeyError, match="r7"):
        aio.run(boom())

    async def outer() -> None:
        aio.run(boom())

    with pytest.raises(KeyError, match="r7"):
        asyncio.run(outer())
