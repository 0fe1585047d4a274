"""The one loader of the Redis adapters' Lua scripts (worker/store/lua/*.lua).

Every script is a file in `lua/`. A ledger script is `prelude.lua` followed by its own file and
takes the prelude's KEYS and ARGV layout (`LedgerScripts`); the limiter, breaker, lease and
migration scripts are plain files (`Script`). Whatever the script, it is run the same way:
EVALSHA, and after a Redis restart flushed the script cache (NOSCRIPT), the source again.

Scripts that run many times in one round trip go through `run_pipelined`: EVALSHA straight into
a pipeline (a redis-py Script object there costs an extra SCRIPT EXISTS round trip per execute),
and the calls that failed with NOSCRIPT, which ran nothing, are run again in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import redis

from worker.core.keys import Keys
from worker.core.states import OrderState

_LUA_DIR = Path(__file__).parent / "lua"

# A script's argument: what redis-py encodes (numbers as their repr).
Arg = str | int | float | bytes


@cache
def source(name: str, *, prelude: bool = False) -> str:
    """The Lua source of `lua/{name}.lua`, after `lua/prelude.lua` when `prelude` is set."""
    body = (_LUA_DIR / f"{name}.lua").read_text(encoding="utf-8")
    if not prelude:
        return body
    return (_LUA_DIR / "prelude.lua").read_text(encoding="utf-8") + "\n" + body


class Script:
    """One script file registered on one client: EVALSHA, falling back to EVAL on NOSCRIPT."""

    def __init__(self, client: redis.Redis[bytes], name: str, *, prelude: bool = False) -> None:
        self.name = name
        self._client = client
        self._script = client.register_script(source(name, prelude=prelude))

    @property
    def sha(self) -> str:
        """The script's SHA1, as EVALSHA takes it."""
        sha: str = self._script.sha  # type: ignore[attr-defined]  # set by register_script
        return sha

    def __call__(self, keys: Sequence[str], args: Sequence[Arg], *, client: Any = None) -> Any:
        """Run once (on `client`, a pipeline say, when given); the script's raw reply."""
        return self._script(keys=list(keys), args=list(args), client=client)

    def run_pipelined(
        self,
        keys: Sequence[str],
        calls: Sequence[Sequence[Arg]],
        *,
        also: Callable[[Any], None] | None = None,
    ) -> list[Any]:
        """Run once per ARGV list in `calls`, in one pipelined round trip; replies in order.

        `also(pipeline)` may queue more commands into the same round trip (after the scripts);
        their replies are dropped, their errors raised. A call that failed with NOSCRIPT ran
        nothing and is run again; any other error is raised.
        """
        pipe = self._client.pipeline(transaction=False)
        for args in calls:
            pipe.evalsha(self.sha, len(keys), *keys, *args)
        if also is not None:
            also(pipe)
        replies = pipe.execute(raise_on_error=False)
        out: list[Any] = []
        for args, reply in zip(calls, replies, strict=False):
            if isinstance(reply, redis.exceptions.NoScriptError):
                reply = self(keys, args)
            elif isinstance(reply, Exception):
                raise reply
            out.append(reply)
        for reply in replies[len(calls) :]:
            if isinstance(reply, Exception):
                raise reply
        return out


class LedgerScripts:
    """The ledger's scripts on one client: `prelude.lua` + a named script, with the prelude's
    KEYS (the shared indexes) and ARGV[1..9] (state names, per-order key templates, now, order
    key) filled in; each script's own arguments follow from ARGV[10] (see prelude.lua)."""

    def __init__(self, client: redis.Redis[bytes], keys: Keys) -> None:
        self._client = client
        states = [str(s) for s in OrderState]
        self._states = " ".join(states)
        self.keys = [
            keys.retry_schedule(),
            keys.enqueued_index(),
            keys.sequence(),
            keys.shed_queue(),
            keys.tombstone_index(),
            keys.counters(),
            *(keys.state_index(s) for s in states),
            keys.order_key_index(),
            keys.received_index(),
        ]
        self._templates: list[str] = []
        for build in (keys.order, keys.order_events, keys.order_attempts):
            self._templates += keys.parts(build)
        self._loaded: dict[str, Script] = {}

    def script(self, name: str) -> Script:
        """The script `lua/{name}.lua` (after the prelude), registered once per client."""
        if name not in self._loaded:
            self._loaded[name] = Script(self._client, name, prelude=True)
        return self._loaded[name]

    def argv(self, now: float, order_key: str, *extra: Arg) -> list[Arg]:
        """The full ARGV of one call: the prelude's nine, then the script's own `extra`."""
        return [self._states, *self._templates, repr(float(now)), order_key, *extra]

    def run(
        self, name: str, now: float, order_key: str = "", *extra: Arg, client: Any = None
    ) -> Any:
        """Run one ledger script once (queued on `client` when that is a pipeline)."""
        return self.script(name)(self.keys, self.argv(now, order_key, *extra), client=client)

    def run_pipelined(
        self,
        name: str,
        calls: Sequence[Sequence[Arg]],
        *,
        also: Callable[[Any], None] | None = None,
    ) -> list[Any]:
        """`Script.run_pipelined` of one ledger script; each call is a full `argv(...)`."""
        return self.script(name).run_pipelined(self.keys, calls, also=also)
