"""Go's ``text/template`` with docker/cli's functions: what ``--format`` and ``inspect -f`` speak.

Docker users write these templates for Docker; strata runs the same text the same way: Go's
grammar, trim markers, ``range``/``if``/``with``/``define``/``break``, pipes, Go's ``fmt``
printing (``map[k:v]``, ``[a b]``, ``<no value>``) and Go's error texts, which Docker prints
after ``template parsing error: ``. Imported only when a template is given (the CLI's start
path stays light).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from strata.cli.template.execute import ExecError, State
from strata.cli.template.funcs import FUNCS, HEADER_FUNCS, Func
from strata.cli.template.gofmt import GoStruct
from strata.cli.template.parse import ParseError, Parser

__all__ = ["ExecError", "GoStruct", "ParseError", "Template", "render_inspect"]


class Template:
    """A parsed template. ``missing_key_error`` is Go's ``missingkey=error`` option, which
    Docker's inspect sets: a key absent from a map fails instead of printing ``<no value>``."""

    def __init__(self, text: str, *, missing_key_error: bool = False) -> None:
        self.text = text
        self.missing_key_error = missing_key_error
        parser = Parser(text, FUNCS)
        self.root = parser.parse()
        self.templates = parser.templates

    def execute(
        self,
        data: Any,
        *,
        funcs: Mapping[str, Func] = FUNCS,
        typed: bool = False,
        missing_key_error: bool | None = None,
    ) -> str:
        """The output; raises :class:`ExecError` (with no partial output) on failure."""
        strict = self.missing_key_error if missing_key_error is None else missing_key_error
        return self._state(funcs, typed, strict).run(self.root, data)

    def execute_partial(self, data: Any, *, funcs: Mapping[str, Func] = FUNCS) -> str:
        """What Go wrote before an error, as Docker's table header keeps it."""
        state = self._state(funcs)
        try:
            return state.run(self.root, data)
        except ExecError:
            return "".join(state.out)

    def header(self, names: Mapping[str, str]) -> str:
        """The header row Docker prints above ``table`` output: the template run over the
        column names with the formatting functions made identities."""
        return Template(self.text).execute_partial(names, funcs=HEADER_FUNCS)

    def _state(
        self, funcs: Mapping[str, Func], typed: bool = False, strict: bool | None = None
    ) -> State:
        return State(
            self.text,
            self.templates,
            funcs,
            missing_key_error=self.missing_key_error if strict is None else strict,
            typed=typed,
        )


def render_inspect(template: Template, doc: Mapping[str, Any], kind: str) -> str:
    """docker/cli's inspect: the template over the typed struct (``kind`` names it: "image" or
    "container"), and if that fails, over the raw JSON with ``missingkey=error``; the second
    pass's error is the one reported, as Docker reports it."""
    from strata.cli.template import typed

    schema = {
        "image": typed.IMAGE_INSPECT,
        "container": typed.CONTAINER_INSPECT,
        "volume": typed.VOLUME_INSPECT,
    }.get(kind)
    if schema is not None:
        try:
            return template.execute(typed.typed(doc, schema), typed=True, missing_key_error=True)
        except ExecError:
            pass
    return template.execute(typed.raw(doc), missing_key_error=True)
