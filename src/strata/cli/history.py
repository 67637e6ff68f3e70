"""``strata image history`` (alias ``strata history``): Docker's table, JSON and templates, and
``--files``, which says what each layer did to the files below it."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import click

from strata.cli.context import App, pass_app
from strata.cli.format import COLUMNS, ago, check_template, format_rows, human_size, table, truncate
from strata.errors import InvalidArgument

if TYPE_CHECKING:
    from strata.api import HistoryEntry
    from strata.image.history import FileGroup, LayerFiles

CREATED_BY_WIDTH: Final = 45
# Docker prints CREATED as N/A for no time and for times before 2000 (made-up times, such as
# reproducible builds' epoch 0).
_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
_ZERO_TIME: Final = "0001-01-01T00:00:00Z"
_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})
# Docker's boolean flags (pflag) take an optional "=VALUE": -H=false, --no-trunc=true.
_BOOL_FLAGS: Final = {
    "-H": "--human",
    "--human": "--human",
    "-q": "--quiet",
    "--quiet": "--quiet",
    "--no-trunc": "--no-trunc",
    "--files": "--files",
}


class _HistoryCommand(click.Command):
    """Reads Docker's boolean flag forms (``-H``, ``-H=false``, ``--human=false``) before click."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rewritten: list[str] = []
        for i, arg in enumerate(args):
            if arg == "--":
                rewritten += args[i:]
                break
            name, eq, value = arg.partition("=")
            long = _BOOL_FLAGS.get(name)
            if long is None:
                rewritten.append(arg)
                continue
            if not eq:
                value = "true"
            elif value not in _TRUE | _FALSE:
                raise InvalidArgument(
                    f'invalid argument "{value}" for "{name}" flag: expected true or false'
                )
            on = value in _TRUE
            if long == "--human":
                rewritten.append(f"--human={'true' if on else 'false'}")
            elif on:
                rewritten.append(long)
        return super().parse_args(ctx, rewritten)


@click.command("history", cls=_HistoryCommand)
@click.option(
    "-H",
    "--human",
    type=click.BOOL,
    default=True,
    metavar="[=true|false]",
    help="Print sizes and dates in human readable format (default true).",
)
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option(
    "--format",
    "fmt",
    help="'table', 'table TEMPLATE', 'json', or a Go template such as '{{.ID}}: {{.Size}}'.",
)
@click.option(
    "--files",
    is_flag=True,
    help="Under each layer, list the largest files it added, changed and deleted, and the bytes"
    " of lower layers it hides.",
)
@click.option(
    "--top",
    metavar="N",
    help="With --files: how many files of each kind to list per layer (default 5).",
)
@click.argument("image")
@pass_app
def history_cmd(
    app: App,
    human: bool,
    no_trunc: bool,
    quiet: bool,
    fmt: str | None,
    files: bool,
    top: str | None,
    image: str,
) -> None:
    """Show the history of an image.

    One row per build step, newest first: IMAGE (the image's ID on the top row; <missing> below,
    as Docker shows for steps of images not built here), CREATED, CREATED BY, SIZE (the bytes of
    the layer's files, as Docker counts them; 0B for steps that made no layer, such as CMD or
    ENV) and COMMENT.

    Beyond Docker, --files reads every layer once and lists under each layer row the N largest
    files it added (A), changed (C: a lower layer had the path; "was" is the size it replaces)
    and deleted (D: whiteouts, a directory as DIR/ and the lower contents an opaque directory
    drops as DIR/*), then "hides X from lower layers": bytes of lower layers that the layer
    overwrites or deletes, which the image still ships but no container can see.
    """
    from strata.api import history
    from strata.image.history import DEFAULT_TOP

    count = _top(top, files)
    # Docker trims spaces around --format; empty is its default table.
    fmt = (fmt or "").strip(" ") or "table"
    if re.fullmatch(r"\{\{\s*json\s+\.\s*\}\}", fmt):
        fmt = "json"  # what Docker's "json" stands for
    table_format = fmt == "table"
    templated = fmt not in ("table", "json")
    if templated:
        _check_template(fmt)
    if files and (templated or (quiet and table_format)):
        raise InvalidArgument("--files shows the table or --format json, not -q or a template")
    rows = history(
        image,
        sizes=not (quiet and table_format),  # IDs only: no need to read the layers
        files=(count or DEFAULT_TOP) if files else None,
        root=app.store().path,
    )
    now = datetime.now(UTC)
    items = [_item(row, trunc=not no_trunc, human=human, now=now) for row in rows]
    if table_format and quiet:
        for item in items:
            click.echo(item["ID"])
    elif fmt == "json":
        for row, item in zip(rows, items, strict=True):
            doc: dict[str, Any] = dict(item)
            if row.files is not None:
                doc["Files"] = _files_json(row.files)
            click.echo(_go_json(doc))
    elif table_format:
        _print_table(rows, items, human=human, show_files=files)
    else:
        _print_template(fmt, items)


def _top(text: str | None, files: bool) -> int | None:
    if text is None:
        return None
    if not files:
        raise InvalidArgument("--top only applies with --files")
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidArgument(f"invalid --top {text!r}: must be a whole number of at least 1")
    return value


def _check_template(fmt: str) -> None:
    """Refuse what Docker's template engine would, before any work (Docker's words)."""
    check_template(fmt, "history")


def _print_template(fmt: str, items: Sequence[Mapping[str, str]]) -> None:
    """A Go template per row, or with a ``table`` prefix, a table headed as Docker heads it."""
    rows = [_one_line(item) for item in items] if fmt.startswith("table") else items
    click.echo(format_rows(fmt, rows, "history"))


def _item(row: HistoryEntry, *, trunc: bool, human: bool, now: datetime) -> dict[str, str]:
    """Docker's fields for one row (``historyContext``): strings, as its templates see them."""
    ident = (row.short_id if trunc else row.id) or "<missing>"
    # Docker works from whole Unix seconds; an entry without a time is Go's zero time.
    seconds = math.floor(row.created.timestamp()) if row.created else None
    created_at = _ZERO_TIME if seconds is None else _rfc3339(seconds)
    if not human:
        since = created_at
    elif seconds is None or seconds <= _EPOCH:
        since = "N/A"
    else:
        since = ago(datetime.fromtimestamp(seconds, UTC), now)
    created_by = row.created_by.replace("\t", " ")
    return {
        "Comment": row.comment,
        "CreatedAt": created_at,
        "CreatedBy": truncate(created_by, CREATED_BY_WIDTH) if trunc else created_by,
        "CreatedSince": since,
        "ID": ident,
        "Size": human_size(row.size) if human else str(row.size),
    }


def _rfc3339(seconds: int) -> str:
    """Go's ``time.RFC3339`` in this machine's time zone, as Docker's client prints it."""
    try:
        when = datetime.fromtimestamp(seconds, UTC).astimezone()
    except (OverflowError, OSError, ValueError):
        return _ZERO_TIME
    offset = when.utcoffset()
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if not offset:
        return text + "Z"
    total = int(offset.total_seconds())
    sign = "-" if total < 0 else "+"
    total = abs(total)
    return f"{text}{sign}{total // 3600:02d}:{total % 3600 // 60:02d}"


def _go_json(obj: Mapping[str, Any]) -> str:
    """One line of JSON as Go's encoding/json writes it: keys sorted, UTF-8 kept, and
    ``<``, ``>``, ``&``, U+2028 and U+2029 escaped (Docker prints ``\\u003cmissing\\u003e``)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def _one_line(item: Mapping[str, str]) -> dict[str, str]:
    # A newline inside a cell (a heredoc RUN) would split the table row in two.
    return {key: value.replace("\n", " ") for key, value in item.items()}


def _print_table(
    rows: Sequence[HistoryEntry],
    items: Sequence[Mapping[str, str]],
    *,
    human: bool,
    show_files: bool,
) -> None:
    created = "CreatedSince" if human else "CreatedAt"
    keys = ("ID", created, "CreatedBy", "Size", "Comment")
    cells = [[_one_line(item)[key] for key in keys] for item in items]
    lines = table([COLUMNS["history"][key] for key in keys], cells).split("\n")
    if not show_files:
        click.echo("\n".join(lines))
        return
    size: Callable[[int], str] = human_size if human else str
    out = [lines[0]]
    for row, line in zip(rows, lines[1:], strict=True):
        out.append(line)
        if row.files is not None:
            out += _file_lines(row.files, size)
    hidden = sum(row.files.hides for row in rows if row.files is not None)
    total = sum(row.size for row in rows)
    out += [
        "",
        f"Hidden by upper layers: {size(hidden)} of {size(total)}"
        " (shipped in the image, seen by no container)",
    ]
    click.echo("\n".join(out))


def _file_lines(files: LayerFiles, size: Callable[[int], str]) -> list[str]:
    """The lines under one layer row: a summary, then the largest A/C/D entries."""
    added, changed, deleted = files.added, files.changed, files.deleted
    parts = []
    if added.count:
        parts.append(f"added {_count(added.count, 'file')} ({size(added.size)})")
    if changed.count:
        parts.append(f"changed {changed.count} ({size(changed.size)})")
    if deleted.count:
        parts.append(f"deleted {deleted.count}")
    if not parts:
        return ["    no file changes"]
    summary = ", ".join(parts)
    if files.hides:
        summary += f"; hides {size(files.hides)} from lower layers"
    entries: list[tuple[str, str, str]] = []
    entries += [("A", size(c.size), c.path) for c in added.largest]
    entries += [
        ("C", size(c.size), f"{c.path} (was {size(c.lower_size)})") for c in changed.largest
    ]
    for c in deleted.largest:
        note = f" ({_count(c.files, 'file')})" if c.path.endswith(("/", "/*")) else ""
        entries.append(("D", size(c.lower_size), c.path + note))
    width = max((len(entry[1]) for entry in entries), default=0)
    return ["    " + summary] + [
        f"      {mark} {amount:>{width}}  {path}" for mark, amount, path in entries
    ]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _files_json(files: LayerFiles) -> dict[str, Any]:
    def group(g: FileGroup) -> dict[str, Any]:
        return {
            "Count": g.count,
            "Size": g.size,
            "LowerSize": g.lower_size,
            "Largest": [
                {"Path": c.path, "Size": c.size, "LowerSize": c.lower_size, "Files": c.files}
                for c in g.largest
            ],
        }

    return {
        "Added": group(files.added),
        "Changed": group(files.changed),
        "Deleted": group(files.deleted),
        "Hides": files.hides,
        "ContentSize": files.content_size,
    }
