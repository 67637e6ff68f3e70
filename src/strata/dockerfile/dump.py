"""BuildKit's AST dump: ``(run "echo hi")``, one line per instruction, strings quoted as Go does.

The format is what BuildKit's parser tests compare against, so matching it byte for byte is how
this parser proves it reads Dockerfiles the way BuildKit does.
"""

from __future__ import annotations

from strata.dockerfile.ast import Dockerfile, Node
from strata.dockerfile.heredoc import GO_SPACE
from strata.gofmt import go_quote

__all__ = ["dump", "dump_node"]


def dump_node(node: Node) -> str:
    """One instruction in dump form, without the surrounding parentheses."""
    parts = [node.value]
    if node.flags:
        parts.append("[" + " ".join(go_quote(flag) for flag in node.flags) + "]")
    parts.extend(go_quote(arg) for arg in node.args)
    if node.nested is not None:
        parts.append("(" + dump_node(node.nested) + ")")
    return " ".join(parts).strip(GO_SPACE)


def dump(df: Dockerfile) -> str:
    """The whole file in BuildKit's dump format (``Node.Dump()``), lines joined by newlines."""
    return "\n".join("(" + dump_node(node) + ")" for node in df.nodes)
