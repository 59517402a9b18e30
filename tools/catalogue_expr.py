"""Catalogue size/offset expressions (tables/README.md): the tree form
the compiler works on, its parser, infix text and the RPN the firmware
evaluates. Split out of tools/catalogue_compiler.py (which re-exports
these names)."""
import re

EXTENDED_BASE = 2048          # ETnn = 2048 + nn, EPnn = 2048 + nn, extended event n = 2048 + n


# --------------------------------------------------------------------------
# Size/offset expressions.  AST nodes are tuples:
#   ("n", value)                 constant
#   ("f", table_id, off, nbytes) unsigned little-endian field of a table
#   ("b", node, lo, width)       bit range of a value
#   ("op", op, a, b)             op in + - * / max
# Constructors fold constants so fixed layouts stay plain ints.

def num(v):
    return ("n", v)


def const(node):
    return node[1] if node[0] == "n" else None


def _apply(op, a, b):
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a // b if b else 0
    return max(a, b)


def binop(op, a, b):
    ca, cb = const(a), const(b)
    if ca is not None and cb is not None:
        if op == "/" and cb == 0:
            raise ValueError("division by zero")
        return num(_apply(op, ca, cb))
    if op == "+" and ca == 0:
        return b
    if op in "+-" and cb == 0:
        return a
    if op == "*" and (ca == 0 or cb == 0):
        return num(0)
    if op == "*" and ca == 1:
        return b
    if op in "*/" and cb == 1:
        return a
    return ("op", op, a, b)


def bitsnode(x, lo, width):
    cx = const(x)
    if cx is not None:
        return num((cx >> lo) & ((1 << width) - 1))
    return ("b", x, lo, width)


def evaluate(node, dims):
    kind = node[0]
    if kind == "n":
        return node[1]
    if kind == "f":
        return dims(node[1], node[2], node[3])
    if kind == "b":
        return (evaluate(node[1], dims) >> node[2]) & ((1 << node[3]) - 1)
    return _apply(node[1], evaluate(node[2], dims), evaluate(node[3], dims))


def to_rpn(node, out=None):
    out = [] if out is None else out
    kind = node[0]
    if kind == "n":
        out.append(node[1])
    elif kind == "f":
        out.append(("f", node[1], node[2], node[3]))
    elif kind == "b":
        to_rpn(node[1], out)
        out.append(("b", node[2], node[3]))
    else:
        to_rpn(node[2], out)
        to_rpn(node[3], out)
        out.append(node[1])
    return out


def table_key(tid):
    return ("ET%02d" % (tid - EXTENDED_BASE)) if tid >= EXTENDED_BASE else ("BT%02d" % tid)


_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


def to_text(node, parent=0, right=False):
    """Infix text that parses back to the same tree (used in catalogue.json)."""
    kind = node[0]
    if kind == "n":
        return str(node[1])
    if kind == "f":
        ref = "%s.%d" % (table_key(node[1]), node[2])
        return ref if node[3] == 1 else "%s:%d" % (ref, node[3])
    if kind == "b":
        return "bits(%s, %d, %d)" % (to_text(node[1]), node[2], node[3])
    op = node[1]
    if op == "max":
        return "max(%s, %s)" % (to_text(node[2]), to_text(node[3]))
    prec = _PREC[op]
    text = "%s %s %s" % (to_text(node[2], prec), op, to_text(node[3], prec, True))
    if prec < parent or (prec == parent and right):
        text = "(" + text + ")"
    return text


_TOKEN_RE = re.compile(
    r"\s*(?:(?P<ref>(?:BT|ET)\d+\.\d+(?::\d+)?)|(?P<num>0[xX][0-9a-fA-F]+|\d+)"
    r"|(?P<name>[a-z_]+)|(?P<op>[-+*/(),]))")
_REF_RE = re.compile(r"(BT|ET)(\d+)\.(\d+)(?::(\d+))?$")


def parse_expr(text):
    """Parse a size/offset/count expression; see tables/README.md for the syntax.

    BT71.5 = UINT8 at offset 5 of BT71; BT71.5:2 = 2 bytes there (LSB first);
    bits(x, lo, width); min(a, b); max(a, b); + - * / (floor); parentheses.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        return num(text)
    if not isinstance(text, str):
        raise ValueError("expression must be an int or a string, got %r" % (text,))
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError("bad character at %r" % text[pos:])
        tokens.append((m.lastgroup, m.group(m.lastgroup)))
        pos = m.end()
    tokens.append(("end", None))
    parser = _Parser(tokens)
    node = parser.expr()
    if parser.peek()[0] != "end":
        raise ValueError("unexpected %r" % (parser.peek()[1],))
    return node


class _Parser:
    def __init__(self, tokens):
        self.tokens, self.i = tokens, 0

    def peek(self):
        return self.tokens[self.i]

    def take(self, value=None):
        tok = self.tokens[self.i]
        if value is not None and tok[1] != value:
            raise ValueError("expected %r, got %r" % (value, tok[1]))
        self.i += 1
        return tok

    def expr(self):
        node = self.term()
        while self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            node = binop(op, node, self.term())
        return node

    def term(self):
        node = self.atom()
        while self.peek()[1] in ("*", "/"):
            op = self.take()[1]
            node = binop(op, node, self.atom())
        return node

    def atom(self):
        kind, value = self.take()
        if kind == "num":
            return num(int(value, 0))
        if kind == "ref":
            m = _REF_RE.match(value)
            tid = int(m.group(2)) + (EXTENDED_BASE if m.group(1) == "ET" else 0)
            nbytes = int(m.group(4) or 1)
            if not 1 <= nbytes <= 4:
                raise ValueError("field width must be 1..4 bytes in %r" % value)
            return ("f", tid, int(m.group(3)), nbytes)
        if value == "(":
            node = self.expr()
            self.take(")")
            return node
        if kind == "name" and value in ("max", "min", "bits"):
            self.take("(")
            args = [self.expr()]
            while self.peek()[1] == ",":
                self.take()
                args.append(self.expr())
            self.take(")")
            if value == "bits":
                if len(args) != 3 or const(args[1]) is None or const(args[2]) is None:
                    raise ValueError("bits(x, lo, width) needs constant lo and width")
                return bitsnode(args[0], const(args[1]), const(args[2]))
            if len(args) != 2:
                raise ValueError("%s() takes two arguments" % value)
            if value == "max":
                return binop("max", args[0], args[1])
            # min(a, b) = a - max(a - b, 0): keeps the firmware's operator set small
            return binop("-", args[0], binop("max", binop("-", args[0], args[1]), num(0)))
        raise ValueError("unexpected %r" % (value,))


def refs_of(node, out=None):
    out = set() if out is None else out
    if node[0] == "f":
        out.add(node[1:])
    elif node[0] == "b":
        refs_of(node[1], out)
    elif node[0] == "op":
        refs_of(node[2], out)
        refs_of(node[3], out)
    return out
