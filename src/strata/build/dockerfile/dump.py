"""BuildKit's AST dump: ``(run "echo hi")``, one line per instruction, strings quoted as Go does.

The format is what BuildKit's parser tests compare against, so matching it byte for byte is how
this parser proves it reads Dockerfiles the way BuildKit does.
"""

from __future__ import annotations

from strata.build.dockerfile.ast import Dockerfile, Node
from strata.build.dockerfile.heredoc import GO_SPACE

__all__ = ["dump", "dump_node", "go_quote"]

_SHORT_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def go_quote(text: str) -> str:
    """``text`` as Go's ``strconv.Quote`` writes it (``%q``): printable runes kept as they are.

    Lone surrogates from ``surrogateescape`` decoding stand for undecodable bytes and are written
    as ``\\xNN``, as Go writes invalid UTF-8.
    """
    if text.isascii() and text.isprintable():
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif 0xD800 <= code <= 0xDFFF:
            if 0xDC80 <= code <= 0xDCFF:
                out.append(f"\\x{code - 0xDC00:02x}")
            else:
                # Go sees the three bytes of an encoded surrogate as invalid UTF-8.
                out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
        elif ch.isprintable():
            out.append(ch)
        elif ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


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
