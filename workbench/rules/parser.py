"""Recursive-descent parser for rule expressions: tokens in, a small syntax tree out.

Grammar, lowest precedence first (as in Python and SQL)::

    expr       := and_expr ('or' and_expr)*
    and_expr   := not_expr ('and' not_expr)*
    not_expr   := 'not' not_expr | comparison
    comparison := sum (('<'|'<='|'>'|'>='|'=='|'!=') sum)*      chained: a < b < c
                | sum ['not'] 'in' (list_name | '[' literal, ... ']' | 'list' '(' string ')')
    sum        := term (('+'|'-') term)*
    term       := unary (('*'|'/'|'%') unary)*
    unary      := ('-'|'+') unary | primary
    primary    := number | string | 'true' | 'false' | name | name '(' args ')'
                | '(' expr ')'

Nesting (parentheses, calls, unary operators, ``not``) is limited to :data:`MAX_DEPTH`, so the
recursion here and in the checker and compiler stays shallow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.rules.lexer import KEYWORDS, Token, error, tokenize

MAX_DEPTH = 32
MAX_LIST_ITEMS = 1000

COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")


@dataclass(slots=True, eq=False)
class Node:
    """A syntax-tree node; the checker fills ``type``, ``nullable`` and ``errs``.

    kinds: num, str, bool (literals, ``value``); name (``value``); list (``args`` literals);
    dynlist (``value`` = name: ``list("name")``, a maintained list read at run time);
    neg; arith (``op``); cmp (``value`` = [(op, pos), ...], ``args`` = operands);
    and / or (n-ary ``args``); not; in (``op`` 'in' | 'not in', ``args`` = [lhs, rhs]);
    call (``value`` = function name).
    """

    kind: str
    pos: int
    start: int
    end: int
    op: str = ""
    value: object = None
    args: list[Node] = field(default_factory=list)
    type: str = ""
    nullable: bool = False
    errs: bool = False


def parse(text: str) -> Node:
    """The syntax tree of ``text``, or a RuleError at the first problem."""
    return _Parser(text, tokenize(text)).parse()


class _Parser:
    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    # -- helpers ---------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def at(self, kind: str, *texts: str) -> bool:
        tok = self.tok
        return tok.kind == kind and (not texts or tok.text in texts)

    def at_keyword(self, word: str) -> bool:
        return self.tok.kind == "NAME" and self.tok.text == word

    def advance(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    def expect(self, text: str, what: str) -> Token:
        if not self.at("OP", text):
            raise error(f"expected {what}, found {_describe(self.tok)}", self.tok.pos)
        return self.advance()

    def nest(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise error(f"expression is nested too deeply (at most {MAX_DEPTH} levels)", pos)

    def end_of(self) -> int:
        """End offset of the last consumed token."""
        prev = self.tokens[self.i - 1]
        return prev.pos + len(prev.text)

    # -- grammar ---------------------------------------------------------------------------
    def parse(self) -> Node:
        if self.at("END"):
            raise error("the expression is empty", 0)
        node = self.expr()
        if not self.at("END"):
            tok = self.tok
            if tok.kind == "OP" and tok.text == "[":
                raise error("subscripts are not allowed", tok.pos)
            if tok.kind == "OP" and tok.text == "(":
                raise error("only named functions can be called", tok.pos)
            raise error(f"unexpected {_describe(tok)}", tok.pos)
        return node

    def expr(self) -> Node:
        return self.logic("or", self.and_expr)

    def and_expr(self) -> Node:
        return self.logic("and", self.not_expr)

    def logic(self, word: str, operand) -> Node:
        first = operand()
        if not self.at_keyword(word):
            return first
        pos = self.tok.pos
        args = [first]
        while self.at_keyword(word):
            self.advance()
            args.append(operand())
        return Node(word, pos, first.start, self.end_of(), args=args)

    def not_expr(self) -> Node:
        if self.at_keyword("not"):
            tok = self.advance()
            self.nest(tok.pos)
            inner = self.not_expr()
            self.depth -= 1
            return Node("not", tok.pos, tok.pos, self.end_of(), args=[inner])
        return self.comparison()

    def comparison(self) -> Node:
        left = self.sum()
        if self.at_keyword("in") or (self.at_keyword("not") and self._next_is_in()):
            return self.membership(left)
        if not self.at("OP", *COMPARISONS):
            return left
        ops, args = [], [left]
        while self.at("OP", *COMPARISONS):
            tok = self.advance()
            ops.append((tok.text, tok.pos))
            args.append(self.sum())
        if self.at_keyword("in") or self.at_keyword("not"):
            raise error(
                "'in' cannot be chained with other comparisons; use parentheses", self.tok.pos
            )
        return Node("cmp", ops[0][1], left.start, self.end_of(), value=ops, args=args)

    def _next_is_in(self) -> bool:
        nxt = self.tokens[self.i + 1]
        return nxt.kind == "NAME" and nxt.text == "in"

    def membership(self, left: Node) -> Node:
        pos = self.tok.pos
        op = "in"
        if self.at_keyword("not"):
            self.advance()
            op = "not in"
        self.advance()  # 'in'
        if self.at("OP", "["):
            right = self.list_literal()
        elif self.at_keyword("list") and self.tokens[self.i + 1].text == "(":
            right = self.maintained_list()
        elif self.tok.kind == "NAME" and self.tok.text not in KEYWORDS:
            tok = self.advance()
            right = Node("name", tok.pos, tok.pos, self.end_of(), value=tok.text)
            if self.at("OP", "("):
                raise error("the right side of 'in' must be a list name or [literal, ...]", tok.pos)
        else:
            raise error(
                f"expected a list name or [literal, ...] after '{op}', found {_describe(self.tok)}",
                self.tok.pos,
            )
        if self.at_keyword("in") or self.at_keyword("not") or self.at("OP", *COMPARISONS):
            raise error(
                "'in' cannot be chained with other comparisons; use parentheses", self.tok.pos
            )
        return Node("in", pos, left.start, self.end_of(), op=op, args=[left, right])

    def maintained_list(self) -> Node:
        name = self.advance()  # 'list'
        self.advance()  # '('
        if not self.at("STR"):
            raise error(
                "list(...) takes the name of a maintained list in quotes, such as "
                'list("blocked_cards")',
                self.tok.pos,
            )
        value = self.advance().value
        self.expect(")", "')'")
        return Node("dynlist", name.pos, name.pos, self.end_of(), value=value)

    def list_literal(self) -> Node:
        open_tok = self.advance()
        self.nest(open_tok.pos)
        items: list[Node] = []
        while not self.at("OP", "]"):
            if items:
                self.expect(",", "',' or ']'")
                if self.at("OP", "]"):  # trailing comma
                    break
            items.append(self.literal())
            if len(items) > MAX_LIST_ITEMS:
                raise error(f"list has too many items (at most {MAX_LIST_ITEMS})", items[-1].pos)
        self.advance()
        self.depth -= 1
        return Node("list", open_tok.pos, open_tok.pos, self.end_of(), args=items)

    def literal(self) -> Node:
        tok = self.tok
        sign = 1.0
        if self.at("OP", "-", "+"):
            sign = -1.0 if tok.text == "-" else 1.0
            self.advance()
            if not self.at("NUM"):
                raise error("a list holds literals only (numbers, 'strings', true, false)", tok.pos)
        item = self.tok
        if item.kind == "NUM":
            self.advance()
            return Node("num", tok.pos, tok.pos, self.end_of(), value=sign * item.value)
        if item.kind == "STR":
            self.advance()
            return Node("str", item.pos, item.pos, self.end_of(), value=item.value)
        if item.kind == "NAME" and item.text in ("true", "false"):
            self.advance()
            return Node("bool", item.pos, item.pos, self.end_of(), value=item.text == "true")
        raise error(
            "a list holds literals only (numbers, 'strings', true, false), found "
            f"{_describe(item)}",
            item.pos,
        )

    def sum(self) -> Node:
        return self.binary(("+", "-"), self.term)

    def term(self) -> Node:
        return self.binary(("*", "/", "%"), self.unary)

    def binary(self, ops: tuple[str, ...], operand) -> Node:
        left = operand()
        while self.at("OP", *ops):
            tok = self.advance()
            right = operand()
            left = Node(
                "arith", tok.pos, left.start, self.end_of(), op=tok.text, args=[left, right]
            )
        return left

    def unary(self) -> Node:
        if self.at("OP", "-", "+"):
            tok = self.advance()
            self.nest(tok.pos)
            inner = self.unary()
            self.depth -= 1
            if tok.text == "+":
                return inner
            return Node("neg", tok.pos, tok.pos, self.end_of(), args=[inner])
        return self.primary()

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind == "NUM":
            self.advance()
            return Node("num", tok.pos, tok.pos, self.end_of(), value=tok.value)
        if tok.kind == "STR":
            self.advance()
            return Node("str", tok.pos, tok.pos, self.end_of(), value=tok.value)
        if tok.kind == "NAME":
            if tok.text in ("true", "false"):
                self.advance()
                return Node("bool", tok.pos, tok.pos, self.end_of(), value=tok.text == "true")
            if tok.text in KEYWORDS:
                raise error(f"unexpected keyword '{tok.text}'", tok.pos)
            self.advance()
            if self.at("OP", "("):
                return self.call(tok)
            return Node("name", tok.pos, tok.pos, self.end_of(), value=tok.text)
        if tok.kind == "OP" and tok.text == "(":
            self.advance()
            self.nest(tok.pos)
            inner = self.expr()
            self.expect(")", "')'")
            self.depth -= 1
            inner.start, inner.end = tok.pos, self.end_of()
            return inner
        if tok.kind == "OP" and tok.text == "[":
            raise error("a [list] may only follow 'in'", tok.pos)
        raise error(f"unexpected {_describe(tok)}", tok.pos)

    def call(self, name: Token) -> Node:
        open_tok = self.advance()
        self.nest(open_tok.pos)
        args: list[Node] = []
        while not self.at("OP", ")"):
            if args:
                self.expect(",", "',' or ')'")
            args.append(self.expr())
        self.advance()
        self.depth -= 1
        return Node("call", name.pos, name.pos, self.end_of(), value=name.text, args=args)


def _describe(tok: Token) -> str:
    if tok.kind == "END":
        return "end of the expression"
    return f"'{tok.text}'"
