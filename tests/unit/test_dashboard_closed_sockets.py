"""A write to a closed browser tab whose task nobody awaits is not logged as "Task exception
was never retrieved"; any other unretrieved error still is, through the loop's previous
handler. (The browser side: tests/ui/test_ui_responsive.py closes tabs against a real server.)
"""

from __future__ import annotations

import asyncio
import gc

from tornado.websocket import WebSocketClosedError

from workbench.dashboard.server import retrieve_closed_socket_errors


async def _fail(exc: Exception) -> None:
    raise exc


def _unretrieved(loop_errors: list[dict], *excs: Exception) -> None:
    """Run a loop with the handler installed; each ``exc`` fails a task nobody awaits."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
        retrieve_closed_socket_errors()
        retrieve_closed_socket_errors()  # once per loop: the second call changes nothing
        for exc in excs:
            task = asyncio.ensure_future(_fail(exc))
            await asyncio.sleep(0)  # the task runs and fails
            assert task.done()
            del task
        gc.collect()  # a dropped failed task reports itself as it is collected

    asyncio.run(main())


def test_a_closed_socket_write_is_not_reported_and_other_errors_still_are():
    errors: list[dict] = []
    _unretrieved(errors, WebSocketClosedError(), ValueError("a real bug"))
    assert [type(e["exception"]) for e in errors] == [ValueError]
    assert errors[0]["message"] == "Task exception was never retrieved"


def test_without_the_handler_the_closed_socket_write_is_reported():
    errors: list[dict] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        task = asyncio.ensure_future(_fail(WebSocketClosedError()))
        await asyncio.sleep(0)
        del task
        gc.collect()

    asyncio.run(main())
    assert [type(e["exception"]) for e in errors] == [WebSocketClosedError]
