"""Docker's output conventions: human sizes and ages, tab-aligned tables, ``--format`` templates."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from strata.errors import InvalidArgument

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision: decimal units, ``precision`` significant digits
    (``74.8MB``, ``126MB``, ``0B``); Docker's SIZE column uses 3, its VirtualSize field 4."""
    value = float(size)
    unit = 0
    while value >= 1000 and unit < len(_UNITS) - 1:
        value /= 1000
        unit += 1
    text = f"{value:.{precision}g}"
    if "e" in text:  # 999.6 rounds to 1e+03: that is the next unit
        value /= 1000
        unit += 1
        text = f"{value:.{precision}g}"
    return f"{text}{_UNITS[unit]}"


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, as Docker prints ``CREATED`` ages."""
    if seconds < 1:
        return "Less than a second"
    if int(seconds) == 1:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600 / 24 / 365)} years"


def ago(when: datetime | None, now: datetime | None = None) -> str:
    """Docker's ``… ago``: its API gives creation times in whole seconds (Unix time, the
    fraction dropped), so the age is counted from the second ``when`` fell in."""
    if when is None:
        return "N/A"
    now = now or datetime.now(UTC)
    return f"{human_duration(max(0.0, (now - when.replace(microsecond=0)).total_seconds()))} ago"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Align like Docker's tabwriter (min width 10, padding 3, last column unpadded): an empty
    last cell leaves the padding of the one before it, trailing spaces and all, as Docker's do."""
    if not headers:
        return ""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [headers, *rows]:
        cells = [
            cell if i == len(row) - 1 else cell.ljust(max(10, widths[i] + 3))
            for i, cell in enumerate(row)
        ]
        lines.append("".join(cells))
    return "\n".join(lines)


def truncate(text: str, width: int) -> str:
    """Docker's ellipsis truncation (``…`` counts as one character)."""
    return text if len(text) <= width else text[: width - 1] + "…"


# What Docker names each field in a table's header row (docker/cli's formatter constants), per
# list command: the same field reads differently (ID is "IMAGE ID", "CONTAINER ID" or "IMAGE").
COLUMNS: dict[str, dict[str, str]] = {
    "image": {
        "Repository": "REPOSITORY",
        "Tag": "TAG",
        "ID": "IMAGE ID",
        "Digest": "DIGEST",
        "CreatedSince": "CREATED",
        "CreatedAt": "CREATED AT",
        "Size": "SIZE",
        "Containers": "CONTAINERS",
        "VirtualSize": "SIZE",
        "SharedSize": "SHARED SIZE",
        "UniqueSize": "UNIQUE SIZE",
    },
    "container": {
        "ID": "CONTAINER ID",
        "Image": "IMAGE",
        "Command": "COMMAND",
        "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED",
        "Ports": "PORTS",
        "Status": "STATUS",
        "Size": "SIZE",
        "Names": "NAMES",
        "Labels": "LABELS",
        "Mounts": "MOUNTS",
        "Networks": "NETWORKS",
        "State": "STATE",
        "LocalVolumes": "LOCAL VOLUMES",
        "Platform": "PLATFORM",
    },
    "network": {
        "ID": "NETWORK ID",
        "Name": "NAME",
        "Driver": "DRIVER",
        "Scope": "SCOPE",
        "IPv6": "IPV6",
        "Internal": "INTERNAL",
        "Labels": "LABELS",
        "CreatedAt": "CREATED AT",
    },
    # cmds: `stats`.
    "stats": {
        "ID": "CONTAINER ID",
        "Container": "CONTAINER",
        "Name": "NAME",
        "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT",
        "MemPerc": "MEM %",
        "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O",
        "PIDs": "PIDS",
    },
    "history": {
        "ID": "IMAGE",
        "CreatedSince": "CREATED",
        "CreatedAt": "CREATED AT",
        "CreatedBy": "CREATED BY",
        "Size": "SIZE",
        "Comment": "COMMENT",
    },
    # vol: docker volume ls.
    "volume": {
        "Name": "VOLUME NAME",
        "Driver": "DRIVER",
        "Scope": "SCOPE",
        "Mountpoint": "MOUNTPOINT",
        "Labels": "LABELS",
        "Links": "LINKS",
        "Size": "SIZE",
    },
}
# The Go type of each list's rows, which "can't evaluate field" errors name, and the words
# docker/cli puts before a parse and an execution error for that command.
_CONTEXTS: dict[str, tuple[str, str, str]] = {
    "image": ("*formatter.imageContext", "template parsing error", "template parsing error"),
    "container": (
        "*formatter.ContainerContext",
        "failed to parse template",
        "failed to execute template",
    ),
    "history": ("*image.historyContext", "template parsing error", "template parsing error"),
    "volume": ("*formatter.volumeContext", "template parsing error", "template parsing error"),
    "network": ("*formatter.networkContext", "template parsing error", "template parsing error"),
    # cmds: `stats --format`.
    "stats": ("*container.statsContext", "template parsing error", "template parsing error"),
}


class TemplateError(InvalidArgument):
    """A --format template Docker would refuse, in Docker's words; Docker's status (64 for an
    inspect template that does not parse, 1 otherwise)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _parse(fmt: str, prefix: str, exit_code: int = 1) -> Any:
    from strata.cli.template import ParseError, Template

    try:
        return Template(fmt)
    except ParseError as exc:
        raise TemplateError(f"{prefix}: {exc}", exit_code) from None


def _inspect_kind(obj: Mapping[str, Any]) -> str | None:
    """Which of Docker's inspect structs a document is (its shape says), or None for a row."""
    if "Id" not in obj:
        return None
    if "State" in obj:
        return "container"
    return "image" if "RootFS" in obj else None


def check_inspect_template(fmt: str) -> None:
    """Docker's inspect refuses a template that does not parse first, with status 64."""
    _parse(fmt, "template parsing error", 64)


def render_inspect_template(fmt: str, doc: Mapping[str, Any], kind: str | None = None) -> str:
    """``inspect -f``: Docker's two passes (the typed struct, then the raw JSON with
    ``missingkey=error``); the template is used as written (no ``\\t`` translation)."""
    from strata.cli.template import ExecError, render_inspect

    template = _parse(fmt, "template parsing error", 64)
    try:
        return render_inspect(template, doc, kind or _inspect_kind(doc) or "")
    except ExecError as exc:
        raise TemplateError(f"template parsing error: {exc}") from None


def emit_inspect(
    fmt: str,
    docs: Sequence[Mapping[str, Any]],
    echo: Callable[[str], None],
    kind: str | None = None,
) -> None:
    """Each document through the template, as docker/cli's inspect: one that fails does not stop
    the others; the first failure is raised once all that succeeded are printed."""
    from strata.cli.template import ExecError, render_inspect

    template = _parse(fmt, "template parsing error", 64)
    failure: ExecError | None = None
    for doc in docs:
        try:
            echo(render_inspect(template, doc, kind or _inspect_kind(doc) or ""))
        except ExecError as exc:
            failure = failure or exc
    if failure is not None:
        raise TemplateError(f"template parsing error: {failure}") from None


def render_template(template: str, obj: Mapping[str, Any], context: str = "history") -> str:
    """One object through a Go template: an inspect document as ``inspect -f`` renders it,
    else one row of a list command as its ``--format`` does."""
    if _inspect_kind(obj) is not None:
        return render_inspect_template(template, obj)
    return format_rows(template, [obj], context)


def _row(item: Mapping[str, Any], context: str) -> Any:
    from strata.cli.template.gofmt import RowContext

    return RowContext(_CONTEXTS[context][0], item)


def check_template(fmt: str, context: str) -> Any:
    """The parsed template of a list command's ``--format``, or Docker's error for it."""
    body = fmt[len("table") :] if fmt.startswith("table") else fmt
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    return _parse(body, _CONTEXTS[context][1])


def format_rows(fmt: str, items: Sequence[Mapping[str, Any]], context: str) -> str:
    """Rows of a list command through ``--format`` as docker/cli's formatter does: ``\\t`` and
    ``\\n`` mean tab and newline; with a ``table`` prefix, a header row (the template over the
    column names) and columns aligned by Go's tabwriter. Returns the text without its last
    newline."""
    from strata.cli.template import ExecError

    template = check_template(fmt, context)
    exec_prefix = _CONTEXTS[context][2]
    is_table = fmt.startswith("table")
    out = []
    for item in items:
        try:
            out.append(template.execute(_row(item, context)) + "\n")
        except ExecError as exc:
            raise TemplateError(f"{exec_prefix}: {exc}") from None
    if not is_table:
        return "".join(out).removesuffix("\n")
    header = template.header(COLUMNS[context])
    return tabwriter(header + "\n" + "".join(out)).removesuffix("\n")


def tabwriter(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter as Docker sets it up (min width 10, padding 3, spaces, align left):
    a cell is text ended by a tab; a column is aligned over the run of lines that have it; the
    text after a line's last tab is never padded."""
    lines = [line.split("\t") for line in text.split("\n")]
    widths: list[int] = []
    out: list[str] = [""] * len(lines)

    def emit(first: int, last: int) -> None:
        for i in range(first, last):
            cells = lines[i]
            out[i] = "".join(
                cell + " " * (widths[j] - len(cell)) if j < len(widths) else cell
                for j, cell in enumerate(cells)
            )

    def layout(first: int, last: int) -> None:
        column = len(widths)
        start = first
        i = first
        while i < last:
            if column >= len(lines[i]) - 1:
                i += 1
                continue
            emit(start, i)
            block = i
            width = minwidth
            while i < last and column < len(lines[i]) - 1:
                width = max(width, len(lines[i][column]) + padding)
                i += 1
            widths.append(width)
            layout(block, i)
            widths.pop()
            start = i
        emit(start, last)

    layout(0, len(lines))
    return "\n".join(out)


def emit_formatted(
    fmt: str | None,
    headers: Sequence[str],
    items: Sequence[Mapping[str, Any]],
    cells: Callable[[Mapping[str, Any]], Sequence[str]],
    echo: Callable[[str], None],
    context: str | None = None,
) -> None:
    """Print ``items`` as Docker does for ``--format``: its table, JSON lines, or a template.
    ``context`` names the list (image, container, history); by default the headers say."""
    if fmt is None or fmt in ("", "table"):
        echo(table(headers, [cells(i) for i in items]))
        return
    kind = context or {"REPOSITORY": "image", "CONTAINER ID": "container"}.get(
        headers[0] if headers else "", "history"
    )
    text = format_rows("{{json .}}" if fmt == "json" else fmt, items, kind)
    if items or fmt.startswith("table"):
        echo(text)
