"""A build's image configs encoded incrementally, byte for byte as `ImageConfig.to_json`.

Each step's config holds every Env entry and history entry of the steps before it (Docker's do
too), so encoding each config whole makes N steps cost O(N^2) JSON work. Consecutive configs
share their Env and history lists but for the end (an ENV of a variable set before changes its
entry in place), so the encoder keeps each list's encoded entries and re-encodes only from the
first one that differs. The rest of the config is encoded by `ImageConfig.to_json` itself, with
one marker entry standing for each list, so the layout stays `to_json`'s. Anything unusual (a
lone surrogate, which makes `to_json` fall back to ASCII escapes) is encoded whole.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Final, TypeVar

from strata.oci.config import History, ImageConfig

SMALL: Final = 32
"""Below this many Env plus history entries a config is encoded whole (nothing to gain)."""

T = TypeVar("T")


def _json(value: Any) -> bytes:
    # As strata.oci._fields.dumps, but failing where it would fall back to ASCII escapes.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class _Parts:
    """The encoded entries of the last list seen."""

    def __init__(self) -> None:
        self.source: tuple[Any, ...] = ()
        self.parts: list[bytes] = []

    def encode(self, items: Sequence[T], one: Callable[[T], bytes]) -> bytes:
        """``[entry,entry,...]`` as compact JSON, re-encoding from the first changed entry."""
        items = tuple(items)
        known = len(self.source)
        if len(items) >= known and items[:known] == self.source:
            start = known  # the usual case: the same list, one entry longer (C-speed compare)
        else:
            start = 0
            for new, old in zip(items, self.source, strict=False):
                if new is not old and new != old:
                    break
                start += 1
        del self.parts[start:]
        self.parts.extend(one(item) for item in items[start:])
        self.source = items
        return b"[" + b",".join(self.parts) + b"]"


class ConfigEncoder:
    """Encodes the configs of one build's steps (see the module docstring)."""

    def __init__(self) -> None:
        self._env = _Parts()
        self._history = _Parts()
        token = secrets.token_hex(16)
        self._env_mark = f"strata-env-{token}"
        self._history_mark = f"strata-history-{token}"

    def encode(self, config: ImageConfig) -> bytes:
        """``config.to_json()``."""
        env, history = config.config.env, config.history
        if len(env) + len(history) < SMALL:
            return config.to_json()
        try:
            env_json = self._env.encode(env, _json)
            history_json = self._history.encode(history, lambda h: _json(h.to_dict()))
        except UnicodeEncodeError:
            self._env, self._history = _Parts(), _Parts()
            return config.to_json()
        shell = replace(
            config,
            config=replace(config.config, env=(self._env_mark,) if env else ()),
            history=(History(created_by=self._history_mark),) if history else (),
        )
        text = shell.to_json()
        try:  # the rest must be what to_json writes without its ASCII fallback
            _json(json.loads(text))
        except UnicodeEncodeError:
            return config.to_json()
        for present, mark, encoded in (
            (env, _json([self._env_mark]), env_json),
            (history, _json([{"created_by": self._history_mark}]), history_json),
        ):
            if not present:
                continue
            if text.count(mark) != 1:  # pragma: no cover - the marks are random
                return config.to_json()
            text = text.replace(mark, encoded)
        return text
