"""The executor of Go's ``text/template``: walks the tree over Python's JSON shapes as Go walks
``interface{}`` values, and fails with Go's message (``executing "" at <.X>: …``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from strata.cli.template.funcs import CallError, Func, is_true
from strata.cli.template.gofmt import (
    GoInt64,
    GoMap,
    GoNil,
    GoSlice,
    GoStruct,
    JsonNumber,
    sprint_value,
    type_name,
)
from strata.cli.template.lex import line_and_column
from strata.cli.template.nodes import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
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

MAX_DEPTH = 100000  # Go's; Python's own stack limit is met first and reported as this


class ExecError(Exception):
    """Execution failed; ``str()`` is Go's message."""


class _Missing:
    """Go's ``missingVal``: no value came down the pipeline."""


NO_FINAL: Any = _Missing()


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class State:
    """One execution: the output, the variable stack, the node being run (for errors)."""

    def __init__(
        self,
        text: str,
        templates: Mapping[str, ListNode],
        funcs: Mapping[str, Func],
        *,
        missing_key_error: bool,
        typed: bool = False,
        name: str = "",
    ) -> None:
        self.text = text
        self.templates = templates
        self.funcs = funcs
        self.missing_key_error = missing_key_error
        # Docker's typed pass: dicts stand for Go structs (an absent key is an error) while a
        # field of nothing is nothing, as with Go's default missingkey.
        self.typed = typed
        self.name = name
        self.out: list[str] = []
        self.vars: list[list[Any]] = []
        self.node: Node | None = None
        self.depth = 0
        # The element a range is on: Go holds it as interface {}, and errors say so.
        self.range_elem: Any = None
        # The last field read was a map entry holding null: an interface {} that is nil, which
        # Go names as such when it cannot be an argument ("got interface {}").
        self.nil_entry = False
        self.exec_name = name

    # -- variables and errors -----------------------------------------------------------------

    def _mark(self) -> int:
        return len(self.vars)

    def _pop(self, mark: int) -> None:
        del self.vars[mark:]

    def _set_var(self, name: str, value: Any) -> None:
        for var in reversed(self.vars):
            if var[0] == name:
                var[1] = value
                return
        self.error(f"undefined variable: {name}")

    def _var_value(self, name: str) -> Any:
        for var in reversed(self.vars):
            if var[0] == name:
                return var[1]
        self.error(f"undefined variable: {name}")

    def error(self, message: str) -> Any:
        if self.node is None:
            raise ExecError(f"template: {self.name}: {message}")
        line, column = line_and_column(self.text, self.node.pos)
        raise ExecError(
            f"template: {self.name}:{line}:{column}: executing {go_quote(self.exec_name)} "
            f"at <{self.node}>: {message}"
        )

    # -- walking ------------------------------------------------------------------------------

    def run(self, root: ListNode, data: Any) -> str:
        self.vars = [["$", data]]
        self.walk(data, root)
        return "".join(self.out)

    def walk(self, dot: Any, node: Node) -> None:
        self.node = node
        if isinstance(node, ActionNode):
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decls:
                self.node = node
                self.out.append("<no value>" if value is None else sprint_value(value))
        elif isinstance(node, TextNode):
            self.out.append(node.text)
        elif isinstance(node, ListNode):
            for child in node.nodes:
                self.walk(dot, child)
        elif isinstance(node, BranchNode):
            if node.keyword == "range":
                self._walk_range(dot, node)
            else:
                self._walk_if_or_with(dot, node)
        elif isinstance(node, TemplateNode):
            self._walk_template(dot, node)
        elif isinstance(node, BreakNode):
            raise _Break
        elif isinstance(node, ContinueNode):
            raise _Continue
        else:
            self.error(f"unknown node: {node}")

    def _walk_if_or_with(self, dot: Any, node: BranchNode) -> None:
        mark = self._mark()
        value = self.eval_pipeline(dot, node.pipe)
        if is_true(value):
            self.walk(value if node.keyword == "with" else dot, node.body)
        elif node.else_body is not None:
            self.walk(dot, node.else_body)
        self._pop(mark)

    def _walk_range(self, dot: Any, node: BranchNode) -> None:
        self.node = node
        outer = self._mark()
        value = self.eval_pipeline(dot, node.pipe)
        mark = self._mark()
        decls = node.pipe.decls

        def one(index: Any, elem: Any) -> None:
            if decls:
                if node.pipe.is_assign:
                    self._set_var(decls[0].idents[0], index if len(decls) > 1 else elem)
                else:
                    self.vars[-1][1] = elem
            if len(decls) > 1:
                if node.pipe.is_assign:
                    self._set_var(decls[1].idents[0], elem)
                else:
                    self.vars[-2][1] = index
            saved = self.range_elem
            boxed = isinstance(value, list | tuple) or (
                isinstance(value, Mapping) and not isinstance(value, GoMap)
            )
            self.range_elem = elem if boxed else None
            try:
                self.walk(elem, node.body)
            except _Continue:
                pass
            finally:
                self.range_elem = saved
                self._pop(mark)

        items: list[tuple[Any, Any]]
        if isinstance(value, list | tuple):
            items = list(enumerate(value))
        elif isinstance(value, Mapping) and not isinstance(value, GoStruct):
            items = [(k, value[k]) for k in sorted(value, key=_sort_key)]
        elif isinstance(value, int) and not isinstance(value, bool):
            if len(decls) > 1:
                self.error(f"can't use {value} to iterate over more than one variable")
            items = [(i, i) for i in range(value)]
        elif value is None or (isinstance(value, GoNil) and value.kind != "ptr"):
            items = []
        else:
            self.error(f"range can't iterate over {sprint_value(value)}")
        try:
            for index, elem in items:
                one(index, elem)
        except _Break:
            pass
        if not items and node.else_body is not None:
            self.walk(dot, node.else_body)
        self._pop(outer)

    def _walk_template(self, dot: Any, node: TemplateNode) -> None:
        self.node = node
        body = self.templates.get(node.name)
        if body is None:
            self.error(f"template {go_quote(node.name)} not defined")
        if self.depth >= MAX_DEPTH:
            self.error(f"exceeded maximum template depth ({MAX_DEPTH})")
        value = self.eval_pipeline(dot, node.pipe)
        saved, saved_name = self.vars, self.exec_name
        self.vars = [["$", value]]
        self.exec_name = node.name
        self.depth += 1
        try:
            self.walk(value, body)  # type: ignore[arg-type]
        except RecursionError:
            self.node = node
            self.error(f"exceeded maximum template depth ({MAX_DEPTH})")
        finally:
            self.depth -= 1
            self.vars, self.exec_name = saved, saved_name

    # -- evaluation ---------------------------------------------------------------------------

    def eval_pipeline(self, dot: Any, pipe: PipeNode | None) -> Any:
        if pipe is None:
            return None
        self.node = pipe
        value = NO_FINAL
        for cmd in pipe.cmds:
            value = self._eval_command(dot, cmd, value)
        for decl in pipe.decls:
            if pipe.is_assign:
                self._set_var(decl.idents[0], value)
            else:
                self.vars.append([decl.idents[0], value])
        return value

    def _not_a_function(self, args: list[Node], final: Any) -> None:
        if len(args) > 1 or final is not NO_FINAL:
            self.error(f"can't give argument to non-function {args[0]}")

    def _eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            return self._eval_field_node(dot, first, cmd.args, final)
        if isinstance(first, ChainNode):
            return self._eval_chain_node(dot, first, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self._eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, PipeNode):
            self._not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, VariableNode):
            return self._eval_variable_node(dot, first, cmd.args, final)
        self.node = first
        self._not_a_function(cmd.args, final)
        if isinstance(first, BoolNode):
            return first.value
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, NilNode):
            self.error("nil is not a command")
        if isinstance(first, NumberNode):
            return self._ideal_constant(first)
        if isinstance(first, StringNode):
            return first.text
        return self.error(f"can't evaluate command {go_quote(str(first))}")

    def _ideal_constant(self, number: NumberNode) -> Any:
        self.node = number
        text = number.text
        hex_int = text.lstrip("+-")[:2] in ("0x", "0X") and not any(c in text for c in "pP")
        if (
            number.is_float
            and not hex_int
            and not text.startswith("'")
            and any(c in text for c in ".eEpP")
        ):
            return number.float_value
        if number.is_int:
            return number.int_value
        return self.error(f"{text} overflows int")

    def _eval_field_node(self, dot: Any, field: FieldNode, args: list[Node], final: Any) -> Any:
        self.node = field
        return self._eval_field_chain(dot, dot, field, field.idents, args, final)

    def _eval_chain_node(
        self, dot: Any, chain: ChainNode, args: list[Node] | None, final: Any
    ) -> Any:
        self.node = chain
        if isinstance(chain.node, NilNode):
            self.error(f"indirection through explicit nil in {chain}")
        receiver = self._eval_arg(dot, "any", chain.node)
        return self._eval_field_chain(dot, receiver, chain, chain.fields, args, final)

    def _eval_variable_node(
        self, dot: Any, var: VariableNode, args: list[Node] | None, final: Any
    ) -> Any:
        self.node = var
        value = self._var_value(var.idents[0])
        if len(var.idents) == 1:
            self._not_a_function(args or [var], final)
            return value
        return self._eval_field_chain(dot, value, var, var.idents[1:], args, final)

    def _eval_field_chain(
        self,
        dot: Any,
        receiver: Any,
        node: Node,
        idents: list[str],
        args: list[Node] | None,
        final: Any,
    ) -> Any:
        boxed = receiver is self.range_elem and receiver is not None
        for ident in idents[:-1]:
            # A struct's field has its own type; a map's entry is an interface {}.
            present = (
                isinstance(receiver, Mapping)
                and not isinstance(receiver, GoStruct | GoMap)
                and ident in receiver
            )
            receiver = self._eval_field(ident, None, NO_FINAL, receiver, boxed)
            boxed = present and not isinstance(receiver, GoNil)
        return self._eval_field(idents[-1], args, final, receiver, boxed)

    def _eval_field(
        self, name: str, args: list[Node] | None, final: Any, receiver: Any, boxed: bool
    ) -> Any:
        """``.Name`` of a value: a struct's field or a map's key. ``boxed`` says the receiver
        came out of a map or list, where Go holds it as ``interface {}``."""
        if receiver is None:
            if boxed:
                self.error(f"nil pointer evaluating interface {{}}.{name}")
            if self.missing_key_error and not self.typed:
                self.error(f"nil data; no entry for key {go_quote(name)}")
            return None
        has_args = (args is not None and len(args) > 1) or final is not NO_FINAL
        if isinstance(receiver, GoNil):
            if receiver.kind == "ptr":
                self.error(f"nil pointer evaluating {receiver.type_name}.{name}")
            if receiver.kind == "map":
                return None
        if isinstance(receiver, GoMap):
            if has_args:
                self.error(f"{name} is not a method but has arguments")
            return receiver.get(name)
        if isinstance(receiver, GoStruct):
            if name in receiver.fields:
                if has_args:
                    self.error(f"{name} has arguments but cannot be invoked as function")
                return receiver.fields[name]
        elif isinstance(receiver, Mapping):
            if has_args:
                self.error(f"{name} is not a method but has arguments")
            if name in receiver:
                self.nil_entry = receiver[name] is None
                return receiver[name]
            if self.missing_key_error:
                self.error(f"map has no entry for key {go_quote(name)}")
            return None
        typ = "interface {}" if boxed else type_name(receiver)
        return self.error(f"can't evaluate field {name} in type {typ}")

    def _eval_function(
        self, dot: Any, node: IdentifierNode, cmd: Node, args: list[Node] | None, final: Any
    ) -> Any:
        self.node = node
        func = self.funcs.get(node.ident)
        if func is None:
            self.error(f"{go_quote(node.ident)} is not a defined function")
        return self._eval_call(dot, func, cmd, node.ident, args, final)  # type: ignore[arg-type]

    def _eval_call(
        self, dot: Any, func: Func, node: Node, name: str, args: list[Node] | None, final: Any
    ) -> Any:
        rest = list(args[1:]) if args is not None else []
        count = len(rest) + (0 if final is NO_FINAL else 1)
        fixed = len(func.params)
        if func.variadic is not None:
            if count < fixed:
                self.error(
                    f"wrong number of args for {name}: want at least {fixed} got {len(rest)}"
                )
        elif count != fixed:
            self.error(f"wrong number of args for {name}: want {fixed} got {count}")
        if name in ("and", "or") and func.variadic == "value":
            # Go's and/or stop at the first value that decides (since Go 1.18).
            value: Any = None
            for arg in rest:
                value = self._eval_arg(dot, "value", arg)
                if is_true(value) == (name == "or"):
                    return value
            if final is not NO_FINAL:
                value = final
            return value
        argv: list[Any] = []
        for i, arg in enumerate(rest):
            typ = func.params[i] if i < fixed else func.variadic
            argv.append(self._eval_arg(dot, typ or "any", arg))
        if final is not NO_FINAL:
            typ = func.params[count - 1] if count - 1 < fixed else func.variadic
            argv.append(self._validate(final, typ or "any"))
        try:
            return func.impl(*argv)
        except CallError as exc:
            self.node = node
            return self.error(f"error calling {name}: {exc}")

    def _validate(self, value: Any, typ: str) -> Any:
        """Go's validateType: a value of the wrong Go type is an error, as in Go."""
        if typ in ("any", "value"):
            return value
        if value is None:
            if typ == "[]string":
                return None
            self.error(f"invalid value; expected {typ}")
        ok = {
            "string": isinstance(value, str) and not isinstance(value, JsonNumber),
            "int": isinstance(value, int) and not isinstance(value, bool | GoInt64),
            "bool": isinstance(value, bool),
            "[]string": isinstance(value, GoSlice | GoNil) and type_name(value) in _STRINGS,
        }.get(typ, False)
        if not ok:
            self.error(f"wrong type for value; expected {typ}; got {type_name(value)}")
        return value

    def _eval_arg(self, dot: Any, typ: str, node: Node) -> Any:
        self.node = node
        if isinstance(node, DotNode):
            return self._validate(dot, typ)
        if isinstance(node, NilNode):
            if typ in ("any", "value", "[]string"):
                return None
            self.error(f"cannot assign nil to {typ}")
        if isinstance(node, FieldNode | ChainNode):
            self.nil_entry = False
            if isinstance(node, FieldNode):
                value = self._eval_field_node(dot, node, [node], NO_FINAL)
            else:
                value = self._eval_chain_node(dot, node, None, NO_FINAL)
            if value is None and self.nil_entry and typ in ("string", "int", "bool"):
                self.error(f"wrong type for value; expected {typ}; got interface {{}}")
            return self._validate(value, typ)
        if isinstance(node, VariableNode):
            return self._validate(self._eval_variable_node(dot, node, None, NO_FINAL), typ)
        if isinstance(node, PipeNode):
            return self._validate(self.eval_pipeline(dot, node), typ)
        if isinstance(node, IdentifierNode):
            return self._validate(self._eval_function(dot, node, node, None, NO_FINAL), typ)
        if typ == "bool":
            if isinstance(node, BoolNode):
                return node.value
            self.error(f"expected bool; found {node}")
        if typ == "string":
            if isinstance(node, StringNode):
                return node.text
            self.error(f"expected string; found {node}")
        if typ == "int":
            if isinstance(node, NumberNode) and node.is_int:
                return node.int_value
            self.error(f"expected integer; found {node}")
        if typ in ("any", "value"):
            if isinstance(node, BoolNode):
                return node.value
            if isinstance(node, NumberNode):
                return self._ideal_constant(node)
            if isinstance(node, StringNode):
                return node.text
        return self.error(f"can't handle {node} for arg of type {typ}")


# Go types assignable to []string (strslice.StrSlice is a []string by another name).
_STRINGS = frozenset({"[]string", "strslice.StrSlice"})


def _sort_key(key: Any) -> Any:
    return (1, key.encode()) if isinstance(key, str) else (0, key)
