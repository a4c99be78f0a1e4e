"""Khan Academy's ``expression`` widget: an answer such as ``2x+3`` checked for equivalence.

Design
------
- **A small parser, never ``eval``.** What a learner types (``2x+3``, ``x^2-1``,
  ``(x+1)(x-1)``, ``sqrt(x)/2``, ``3\\cdot x``, ``\\frac{x}{2}``) and what the
  exercise stores are read by a recursive-descent parser into a tree of tuples:
  numbers, single-letter variables (``xy`` is ``x·y``, as Khan Academy reads it),
  ``+ - * / ^``, implicit multiplication, parentheses and braces, ``|x|``, a few
  functions (sqrt, sin, cos, tan, ln, log, exp, abs) and ``π``. Input is capped
  in length and nesting, so a hostile answer costs microseconds.
- **Equivalence is numerical, as Khan Academy's algebra system decides it**: both
  trees are evaluated at the same dozen pseudo-random points (seeded by the two
  texts, so the verdict never changes between runs); points where either side is
  undefined are skipped, and at least four must remain.
- **Form and simplification**, when an answer asks for them, are checked on the
  tree: *form* means the same tree up to the order of terms and factors
  (``(x-1)(x+1)`` for ``(x+1)(x-1)``, not ``x^2-1``); *simplify* refuses
  arithmetic left undone (``2·3x``, ``x+0``, ``1x``, ``x^1``) and like terms not
  collected (``x+x``). Both are approximations of Khan Academy's rules, erring
  towards accepting.
"""

from __future__ import annotations

import math
import random
import re

MAX_TEXT = 200
MAX_DEPTH = 40
FUNCTIONS = {"sqrt": math.sqrt, "sin": math.sin, "cos": math.cos, "tan": math.tan, "ln": math.log,
             "log": math.log10, "exp": math.exp, "abs": abs, "arcsin": math.asin, "arccos": math.acos,
             "arctan": math.atan, "sec": lambda v: 1 / math.cos(v), "csc": lambda v: 1 / math.sin(v),
             "cot": lambda v: 1 / math.tan(v)}
GREEK = ("alpha", "beta", "gamma", "delta", "theta", "lambda", "mu", "phi", "sigma", "omega", "tau", "rho")
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?|\.\d+)|\\([A-Za-z]+)|([A-Za-z]+)|(\*\*|[-+*/^(){}\[\]|]))")
_REPLACE = {"\u2212": "-", "\u00d7": "*", "\u00b7": "*", "\u22c5": "*", "\u00f7": "/", "\u03c0": "\\pi",
            "\u2013": "-"}


class NotAnExpression(ValueError):
    """The text cannot be read as an expression."""


def _tokens(text: str) -> list[tuple[str, str]]:
    for a, b in _REPLACE.items():
        text = text.replace(a, b)
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise NotAnExpression(f"unexpected {text[pos]!r}")
        pos = m.end()
        number, command, word, op = m.groups()
        if number is not None:
            out.append(("num", number))
        elif command is not None:
            if command in ("cdot", "times", "ast"):
                out.append(("op", "*"))
            elif command == "div":
                out.append(("op", "/"))
            elif command in ("left", "right", "displaystyle", ","):
                continue
            elif command in ("frac", "dfrac", "tfrac"):
                out.append(("frac", ""))
            elif command == "pi":
                out.append(("name", "pi"))
            elif command in FUNCTIONS:
                out.append(("func", command))
            elif command in GREEK:
                out.append(("name", command))
            else:
                raise NotAnExpression(f"unknown command \\{command}")
        elif word is not None:
            out.extend(_split_word(word))
        else:
            out.append(("op", "^" if op == "**" else {"[": "(", "]": ")"}.get(op, op)))
    return out


def _split_word(word: str) -> list[tuple[str, str]]:
    """``sin``, ``pi``, ``theta`` as themselves; any other run of letters is a product of variables."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(word):
        for name in sorted((*FUNCTIONS, "pi", *GREEK), key=len, reverse=True):
            if word.startswith(name, i):
                out.append(("func" if name in FUNCTIONS else "name", name))
                i += len(name)
                break
        else:
            out.append(("name", word[i]))
            i += 1
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], functions: frozenset[str]):
        self.tokens = tokens
        self.i = 0
        self.depth = 0
        self.functions = functions

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str, value: str | None = None) -> bool:
        tok = self.peek()
        if tok and tok[0] == kind and (value is None or tok[1] == value):
            self.i += 1
            return True
        return False

    def need(self, value: str) -> None:
        if not self.take("op", value):
            raise NotAnExpression(f"expected {value!r}")

    def parse(self):
        if not self.tokens:
            raise NotAnExpression("empty")
        tree = self.expr()
        if self.peek() is not None:
            raise NotAnExpression(f"unexpected {self.peek()[1]!r}")
        return tree

    def expr(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise NotAnExpression("nested too deeply")
        node = self.term()
        while True:
            if self.take("op", "+"):
                node = ("+", node, self.term())
            elif self.take("op", "-"):
                node = ("-", node, self.term())
            else:
                break
        self.depth -= 1
        return node

    def starts_atom(self) -> bool:
        tok = self.peek()
        return tok is not None and (tok[0] in ("num", "name", "func", "frac") or tok == ("op", "(")
                                    or tok == ("op", "{"))

    def term(self):
        node = self.unary()
        while True:
            if self.take("op", "*"):
                node = ("*", node, self.unary())
            elif self.take("op", "/"):
                node = ("/", node, self.unary())
            elif self.starts_atom():  # 2x, 2(x+1), (x+1)(x-1)
                node = ("*", node, self.power())
            else:
                return node

    def unary(self):
        if self.take("op", "-"):
            return ("neg", self.unary())
        if self.take("op", "+"):
            return self.unary()
        return self.power()

    def power(self):
        base = self.atom()
        if self.take("op", "^"):
            return ("^", base, self.unary())
        return base

    def group(self, close: str):
        inner = self.expr()
        self.need(close)
        return inner

    def atom(self):
        tok = self.peek()
        if tok is None:
            raise NotAnExpression("incomplete")
        self.i += 1
        kind, value = tok
        if kind == "num":
            return ("num", float(value))
        if kind == "name":
            if value in self.functions and self.take("op", "("):
                return ("call", value, self.group(")"))
            return ("num", math.pi) if value == "pi" else ("var", value)
        if kind == "func":
            if value == "sqrt" and self.take("op", "["):
                index = self.group(")")  # \sqrt[3]{x}: "[" and "]" read as parentheses
                self.need("{")
                return ("^", self.group("}"), ("/", ("num", 1.0), index))
            if self.take("op", "("):
                return ("call", value, self.group(")"))
            if self.take("op", "{"):
                return ("call", value, self.group("}"))
            return ("call", value, self.power())  # sin x, \sqrt 2
        if kind == "frac":
            self.need("{")
            top = self.group("}")
            self.need("{")
            return ("/", top, self.group("}"))
        if value == "(":
            return self.group(")")
        if value == "{":
            return self.group("}")
        if value == "|":
            return ("call", "abs", self.group("|"))
        raise NotAnExpression(f"unexpected {value!r}")


def parse(text: str, functions=()) -> tuple:
    """The tree of an expression; raises :class:`NotAnExpression`."""
    if not isinstance(text, str) or not text.strip():
        raise NotAnExpression("empty")
    if len(text) > MAX_TEXT:
        raise NotAnExpression("too long")
    if "=" in text:  # equations are another widget
        raise NotAnExpression("an equation, not an expression")
    return _Parser(_tokens(text), frozenset(functions)).parse()


def variables(tree) -> set[str]:
    if tree[0] == "var":
        return {tree[1]}
    if tree[0] == "num":
        return set()
    return set().union(*(variables(t) for t in tree[1:] if isinstance(t, tuple)))


def evaluate(tree, values: dict[str, float]) -> float:
    """The value of a tree; raises ArithmeticError/ValueError where it is undefined."""
    op = tree[0]
    if op == "num":
        return tree[1]
    if op == "var":
        return values[tree[1]]
    if op == "neg":
        return -evaluate(tree[1], values)
    if op == "call":
        arg = evaluate(tree[2], values)
        fn = FUNCTIONS.get(tree[1])
        if fn is None:  # a function the exercise declares (f, g, h): any fixed function will do
            seed = sum(map(ord, tree[1]))
            return math.sin(arg * (1 + seed % 7) / 3) * 5 + arg * (seed % 3 + 1)
        return float(fn(arg))
    a, b = evaluate(tree[1], values), evaluate(tree[2], values)
    if op == "+":
        out = a + b
    elif op == "-":
        out = a - b
    elif op == "*":
        out = a * b
    elif op == "/":
        out = a / b
    else:
        out = a ** b
    if isinstance(out, complex) or not math.isfinite(out):
        raise ValueError("undefined here")
    return out


def equivalent(a: tuple, b: tuple, seed: str = "") -> bool:
    names = sorted(variables(a) | variables(b))
    rnd = random.Random(f"{seed}|{','.join(names)}")
    agreed = 0
    for _ in range(12):
        point = {n: rnd.uniform(-10, 10) for n in names}
        try:
            x, y = evaluate(a, point), evaluate(b, point)
        except (ArithmeticError, ValueError):
            continue
        if abs(x - y) > 1e-7 * max(1.0, abs(x), abs(y)):
            return False
        agreed += 1
    return agreed >= 4 or (not names and agreed >= 1)


def canonical(tree):
    """The tree up to the order of terms and factors (what *form* compares)."""
    op = tree[0]
    if op in ("num", "var"):
        return tree
    if op == "-":
        return canonical(("+", tree[1], ("neg", tree[2])))
    if op in ("+", "*"):
        parts: list = []
        for child in (tree[1], tree[2]):
            c = canonical(child)
            parts.extend(c[1] if c[0] == op else [c])
        return (op, tuple(sorted(parts, key=repr)))
    if op == "call":
        return ("call", tree[1], canonical(tree[2]))
    return (op, *(canonical(t) for t in tree[1:]))


def simplified(tree) -> bool:
    """False when arithmetic is left undone or like terms are not collected."""
    op = tree[0]
    if op in ("num", "var"):
        return True
    if op == "neg":
        return tree[1][0] != "neg" and simplified(tree[1])
    if op == "call":
        return simplified(tree[2])
    a, b = tree[1], tree[2]
    if op in ("+", "-", "*", "^") and a[0] == "num" and b[0] == "num" and not (op == "^" and a[1] == math.pi):
        return False
    if op == "/" and a[0] == "num" and b[0] == "num":
        if not (a[1].is_integer() and b[1].is_integer()) or b[1] in (0, 1) or math.gcd(int(a[1]), int(b[1])) != 1:
            return False
    if op in ("+", "-") and (a == ("num", 0.0) or b == ("num", 0.0)):
        return False
    if op == "*" and (a == ("num", 1.0) or b == ("num", 1.0)):
        return False
    if op == "^" and b in (("num", 1.0), ("num", 0.0)):
        return False
    if op in ("+", "-"):
        flat = canonical(tree)
        parts = flat[1] if flat[0] == "+" else ()
        terms = [_without_coefficient(t) for t in parts if _without_coefficient(t)[0] != "num"]
        if len(terms) != len(set(terms)) or len(parts) - len(terms) > 1:
            return False
    if op == "*":
        factors = canonical(tree)[1] if canonical(tree)[0] == "*" else ()
        if sum(1 for f in factors if f[0] == "num") > 1:
            return False
    return simplified(a) and simplified(b)


def _without_coefficient(term):
    """``3x`` → ``x``, ``-x`` → ``x``, ``5`` → ``5`` (what like terms share)."""
    if term[0] == "neg":
        return _without_coefficient(term[1])
    if term[0] == "*":
        rest = tuple(f for f in term[1] if f[0] != "num")
        return rest[0] if len(rest) == 1 else ("*", rest)
    return term


def grade_expression(widget: dict, text: str) -> tuple[str, str]:
    """("correct" | "wrong" | "invalid", reason) for an expression widget (see :mod:`.perseus`)."""
    functions = widget.get("functions") or ()
    try:
        given = parse(text, functions)
    except (NotAnExpression, RecursionError):
        return "invalid", "not an expression"
    missed = ""
    for answer in widget.get("answers") or ():
        try:
            expected = parse(answer["value"], functions)
        except (NotAnExpression, RecursionError):
            continue
        if not equivalent(given, expected, answer["value"]):
            continue
        status = answer.get("status", "correct")
        if status == "correct":
            if answer.get("form") and canonical(given) != canonical(expected):
                missed = "form"
                continue
            if answer.get("simplify") and not simplified(given):
                missed = missed or "simplify"
                continue
            return "correct", ""
        if status == "ungraded":
            return "invalid", "ungraded"
        return "wrong", ""
    return "wrong", missed
