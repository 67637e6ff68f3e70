"""The parser of Go's ``text/template``: Go's grammar and its parse-time checks (functions must
exist, variables must be declared, ``{{break}}`` only in ``{{range}}``), with Go's error texts."""

from __future__ import annotations

import re
from collections.abc import Collection

from strata.cli.template.lex import Item, Lexer, Token
from strata.cli.template.nodes import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
    ElseNode,
    EndNode,
    FieldNode,
    IdentifierNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    StringNode,
    TemplateNode,
    TextNode,
    VariableNode,
)
from strata.gofmt import go_quote

_OPERAND_START = {
    Item.BOOL,
    Item.CHAR_CONSTANT,
    Item.DOT,
    Item.FIELD,
    Item.IDENTIFIER,
    Item.NUMBER,
    Item.NIL,
    Item.RAW_STRING,
    Item.STRING,
    Item.VARIABLE,
    Item.LEFT_PAREN,
}


class ParseError(Exception):
    """A template that Go would not parse; ``str()`` is Go's message."""


class Parser:
    """One template (and the ``{{define}}``s in it) from text to trees."""

    def __init__(self, text: str, functions: Collection[str], name: str = "") -> None:
        self.text = text
        self.name = name
        self.functions = functions
        self.tokens = Lexer(text).run()
        self.index = 0
        self.vars = ["$"]
        self.range_depth = 0
        self.templates: dict[str, ListNode] = {}

    # -- token stream -------------------------------------------------------------------------

    def _next(self) -> Token:
        token = self.tokens[min(self.index, len(self.tokens) - 1)]
        self.index += 1
        if token.typ is Item.ERROR:
            self._error(token.val, token)
        return token

    def _backup(self, count: int = 1) -> None:
        self.index -= count

    def _peek(self) -> Token:
        token = self._next()
        self._backup()
        return token

    def _next_non_space(self) -> Token:
        token = self._next()
        while token.typ is Item.SPACE:
            token = self._next()
        return token

    def _peek_non_space(self) -> Token:
        token = self._next_non_space()
        self._backup()
        return token

    def _error(self, message: str, token: Token | None = None) -> None:
        if token is None:
            token = self.tokens[max(0, min(self.index, len(self.tokens)) - 1)]
        raise ParseError(f"template: {self.name}:{token.line}: {message}")

    def _expect(self, typ: Item, context: str) -> Token:
        token = self._next_non_space()
        if token.typ is not typ:
            self._unexpected(token, context)
        return token

    def _unexpected(self, token: Token, context: str) -> None:
        if token.typ is Item.ERROR:
            self._error(token.val, token)
        self._error(f"unexpected {token} in {context}", token)

    # -- grammar ------------------------------------------------------------------------------

    def parse(self) -> ListNode:
        root = ListNode(self._peek().pos)
        while self._peek().typ is not Item.EOF:
            if self._peek().typ is Item.LEFT_DELIM:
                self._next()
                if self._next_non_space().typ is Item.DEFINE:
                    self._definition()
                    continue
                self.index = self._rewind_to_delim()
            node = self._text_or_action()
            if isinstance(node, EndNode | ElseNode):
                self._error(f"unexpected {node}")
            if node is not None:
                root.nodes.append(node)
        return root

    def _rewind_to_delim(self) -> int:
        index = self.index - 1
        while self.tokens[index].typ is not Item.LEFT_DELIM:
            index -= 1
        return index

    def _definition(self) -> None:
        token = self._next_non_space()
        name = self._template_name(token, "define clause")
        self._expect(Item.RIGHT_DELIM, "define clause")
        saved_vars, self.vars = self.vars, ["$"]
        body, end = self._item_list()
        self.vars = saved_vars
        if not isinstance(end, EndNode):
            self._error(f"unexpected {end} in definition")
        self._add(name, body)

    def _add(self, name: str, body: ListNode) -> None:
        """Go's rule: a template may be redefined only where one of the two is empty."""
        old = self.templates.get(name)
        if old is not None and not _is_empty(old) and not _is_empty(body):
            self._error(f"template: multiple definition of template {go_quote(name)}")
        if old is None or _is_empty(old):
            self.templates[name] = body

    def _item_list(self) -> tuple[ListNode, Node]:
        body = ListNode(self._peek_non_space().pos)
        while self._peek_non_space().typ is not Item.EOF:
            node = self._text_or_action()
            if isinstance(node, EndNode | ElseNode):
                return body, node
            if node is not None:
                body.nodes.append(node)
        self._error("unexpected EOF")
        raise AssertionError("unreachable")

    def _text_or_action(self) -> Node | None:
        token = self._next_non_space()
        if token.typ is Item.TEXT:
            return TextNode(token.pos, token.val)
        if token.typ is Item.LEFT_DELIM:
            return self._action()
        if token.typ is Item.COMMENT:
            return None
        self._unexpected(token, "input")
        raise AssertionError("unreachable")

    def _action(self) -> Node:
        token = self._next_non_space()
        typ = token.typ
        if typ is Item.BLOCK:
            return self._block()
        if typ in (Item.BREAK, Item.CONTINUE):
            word = token.val
            after = self._next_non_space()
            if after.typ is not Item.RIGHT_DELIM:
                self._unexpected(after, "{{" + word + "}}")
            if self.range_depth == 0:
                self._error("{{" + word + "}} outside {{range}}")
            return BreakNode(token.pos) if typ is Item.BREAK else ContinueNode(token.pos)
        if typ is Item.ELSE:
            peek = self._peek_non_space()
            if peek.typ in (Item.IF, Item.WITH):
                return ElseNode(peek.pos)
            return ElseNode(self._expect(Item.RIGHT_DELIM, "else").pos)
        if typ is Item.END:
            return EndNode(self._expect(Item.RIGHT_DELIM, "end").pos)
        if typ in (Item.IF, Item.RANGE, Item.WITH):
            return self._control(token.val)
        if typ is Item.TEMPLATE:
            return self._template()
        self._backup()
        start = self._peek()
        return ActionNode(start.pos, self._pipeline("command", Item.RIGHT_DELIM))

    def _control(self, context: str) -> BranchNode:
        mark = len(self.vars)
        pipe = self._pipeline(context, Item.RIGHT_DELIM)
        if context == "range":
            self.range_depth += 1
        body, end = self._item_list()
        if context == "range":
            self.range_depth -= 1
        else_body = None
        if isinstance(end, ElseNode):
            chained = {"if": Item.IF, "with": Item.WITH}.get(context)
            if chained is not None and self._peek().typ is chained:
                # {{else if b}} is {{else}}{{if b}}…{{end}}, the outer {{end}} implied.
                self._next()
                else_body = ListNode(end.pos, [self._control(context)])
            else:
                else_body, end = self._item_list()
                if not isinstance(end, EndNode):
                    self._error(f"expected end; found {end}")
        del self.vars[mark:]
        return BranchNode(pipe.pos, context, pipe, body, else_body)

    def _template_name(self, token: Token, context: str) -> str:
        if token.typ not in (Item.STRING, Item.RAW_STRING):
            self._unexpected(token, context)
        return self._unquote(token)

    def _template(self) -> TemplateNode:
        context = "template clause"
        token = self._next_non_space()
        name = self._template_name(token, context)
        pipe = None
        if self._next_non_space().typ is not Item.RIGHT_DELIM:
            self._backup()
            pipe = self._pipeline(context, Item.RIGHT_DELIM)
        return TemplateNode(token.pos, name, pipe)

    def _block(self) -> TemplateNode:
        """``{{block "name" pipe}}body{{end}}``: define ``name`` and execute it in place."""
        context = "block clause"
        token = self._next_non_space()
        name = self._template_name(token, context)
        pipe = self._pipeline(context, Item.RIGHT_DELIM)
        saved_vars, self.vars = self.vars, ["$"]
        body, end = self._item_list()
        self.vars = saved_vars
        if not isinstance(end, EndNode):
            self._error(f"unexpected {end} in {context}")
        self._add(name, body)
        return TemplateNode(token.pos, name, pipe)

    def _pipeline(self, context: str, end: Item) -> PipeNode:
        pipe = PipeNode(self._peek_non_space().pos)
        while True:  # declarations
            var = self._peek_non_space()
            if var.typ is not Item.VARIABLE:
                break
            at_var = self.index
            self._next_non_space()
            following = self._peek_non_space()
            if following.typ in (Item.ASSIGN, Item.DECLARE):
                pipe.is_assign = following.typ is Item.ASSIGN
                self._next_non_space()
                pipe.decls.append(VariableNode(var.pos, [var.val]))
                self.vars.append(var.val)
                break
            if following.typ is Item.CHAR and following.val == ",":
                self._next_non_space()
                pipe.decls.append(VariableNode(var.pos, [var.val]))
                self.vars.append(var.val)
                if context == "range" and len(pipe.decls) < 2:
                    if self._peek_non_space().typ in (
                        Item.VARIABLE,
                        Item.RIGHT_DELIM,
                        Item.RIGHT_PAREN,
                    ):
                        continue
                    self._error("range can only initialize variables")
                self._error(f"too many declarations in {context}")
            # Not a declaration: the variable is the start of a command.
            self.index = at_var
            break
        while True:
            token = self._next_non_space()
            if token.typ is end:
                self._check_pipeline(pipe, context)
                return pipe
            if token.typ in _OPERAND_START:
                self._backup()
                pipe.cmds.append(self._command())
            else:
                self._unexpected(token, context)

    def _check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            self._error(f"missing value for {context}")
        for i, cmd in enumerate(pipe.cmds[1:]):
            if isinstance(cmd.args[0], BoolNode | DotNode | NilNode | NumberNode | StringNode):
                self._error(f"non executable command in pipeline stage {i + 2}")

    def _command(self) -> CommandNode:
        cmd = CommandNode(self._peek_non_space().pos)
        while True:
            self._peek_non_space()
            operand = self._operand()
            if operand is not None:
                cmd.args.append(operand)
            token = self._next()
            if token.typ is Item.SPACE:
                continue
            if token.typ in (Item.RIGHT_DELIM, Item.RIGHT_PAREN):
                self._backup()
            elif token.typ is not Item.PIPE:
                self._unexpected(token, "operand")
            break
        if not cmd.args:
            self._error("empty command")
        return cmd

    def _operand(self) -> Node | None:
        node = self._term()
        if node is None or self._peek().typ is not Item.FIELD:
            return node
        chain = ChainNode(self._peek().pos, node)
        while self._peek().typ is Item.FIELD:
            chain.fields.append(self._next().val[1:])
        # Go folds fields onto a field or variable, keeping the chain's position.
        if isinstance(node, FieldNode):
            return FieldNode(chain.pos, node.idents + chain.fields)
        if isinstance(node, VariableNode):
            return VariableNode(chain.pos, node.idents + chain.fields)
        if isinstance(node, BoolNode | StringNode | NumberNode | NilNode | DotNode):
            self._error(f"unexpected . after term {go_quote(str(node))}")
        return chain

    def _term(self) -> Node | None:
        token = self._next_non_space()
        typ = token.typ
        if typ is Item.IDENTIFIER:
            if token.val not in self.functions:
                self._error(f"function {go_quote(token.val)} not defined", token)
            return IdentifierNode(token.pos, token.val)
        if typ is Item.DOT:
            return DotNode(token.pos)
        if typ is Item.NIL:
            return NilNode(token.pos)
        if typ is Item.VARIABLE:
            name = token.val.split(".")[0]
            if name not in self.vars:
                self._error(f"undefined variable {go_quote(name)}", token)
            return VariableNode(token.pos, [token.val])
        if typ is Item.FIELD:
            return FieldNode(token.pos, [token.val[1:]])
        if typ is Item.BOOL:
            return BoolNode(token.pos, token.val == "true")
        if typ in (Item.CHAR_CONSTANT, Item.NUMBER):
            return self._number(token)
        if typ is Item.LEFT_PAREN:
            return self._pipeline("parenthesized pipeline", Item.RIGHT_PAREN)
        if typ in (Item.STRING, Item.RAW_STRING):
            return StringNode(token.pos, token.val, self._unquote(token))
        self._backup()
        return None

    def _unquote(self, token: Token) -> str:
        if token.typ is Item.RAW_STRING:
            return token.val[1:-1].replace("\r", "")
        text = unquote(token.val[1:-1], '"')
        if text is None:
            self._error("invalid syntax", token)
            raise AssertionError("unreachable")
        return text

    def _number(self, token: Token) -> NumberNode:
        text = token.val
        if token.typ is Item.CHAR_CONSTANT:
            value = unquote(text[1:-1], "'") if text.endswith("'") and len(text) > 2 else None
            if value is None or len(value) != 1:
                self._error(f"malformed character constant: {text}", token)
                raise AssertionError("unreachable")
            code = ord(value)
            return NumberNode(token.pos, text, True, True, code, float(code))
        if text.endswith("i"):
            self._error(f"complex numbers are not supported: {go_quote(text)}", token)
        try:
            number = parse_number(text)
        except OverflowError:
            self._error(f"integer overflow: {go_quote(text)}", token)
            raise AssertionError("unreachable") from None
        if number is None:
            self._error(f"illegal number syntax: {go_quote(text)}", token)
            raise AssertionError("unreachable")
        is_int, int_value, is_float, float_value = number
        return NumberNode(token.pos, text, is_int, is_float, int_value, float_value)


def _is_empty(body: ListNode) -> bool:
    return all(isinstance(n, TextNode) and not n.text.strip(" \t\r\n") for n in body.nodes)


_INT64 = (-(1 << 63), (1 << 63) - 1)


def parse_number(text: str) -> tuple[bool, int, bool, float] | None:
    """Go's reading of a number literal: (is int, its value, is float, its value)."""
    body = text.lstrip("+-")
    negative = text.startswith("-")
    value: int | None = None
    try:
        if re.fullmatch(r"0[0-7_]+", body):
            value = int(body[1:].replace("_", ""), 8)
        elif re.fullmatch(r"0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9][0-9_]*", body):
            value = int(body, 0)
    except ValueError:
        value = None
    if value is not None:
        value = -value if negative else value
        if value > (1 << 64) - 1 or value < _INT64[0]:
            raise OverflowError(text)
        fits = _INT64[0] <= value <= _INT64[1]
        return fits, value if fits else 0, True, float(value)
    try:
        if body[:2] in ("0x", "0X"):
            number = float.fromhex(text)
        elif "_" in body or not re.fullmatch(r"[0-9.eE+-]+", body) or body.count(".") > 1:
            return None
        else:
            number = float(text)
    except ValueError:
        return None
    if not any(c in body for c in ".eEpP"):
        return None
    if number.is_integer() and _INT64[0] <= number <= _INT64[1]:
        return True, int(number), True, number
    return False, 0, True, number


_SIMPLE = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
}


def unquote(body: str, quote: str) -> str | None:
    """strconv.Unquote of the inside of a quoted literal; None where Go says invalid syntax."""
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch in (quote, "\n"):
            return None
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= len(body):
            return None
        esc = body[i + 1]
        i += 2
        if esc in _SIMPLE:
            out.append(_SIMPLE[esc])
        elif esc == quote:
            out.append(quote)
        elif esc in "xuU01234567":
            size = {"x": 2, "u": 4, "U": 8}.get(esc, 3)
            digits = body[i : i + size] if esc in "xuU" else body[i - 1 : i + 2]
            base = 8 if esc not in "xuU" else 16
            if len(digits) != size or not re.fullmatch("[0-9a-fA-F]+", digits):
                return None
            code = int(digits, base)
            i += size if esc in "xuU" else 2
            if esc in "x01234567":
                if code > 255:
                    return None
                # A byte: Go strings are bytes; one byte past ASCII stands for itself here.
                out.append(chr(code))
            else:
                if code > 0x10FFFF or 0xD800 <= code < 0xE000:
                    return None
                out.append(chr(code))
        else:
            return None
    return "".join(out)
