"""Exercises: answer checking and generated questions, with a safe arithmetic evaluator.

Generated questions carry an answer *expression* written by a pack author, so
it is untrusted input: it is parsed with :mod:`ast` and walked node by node.
Only numbers, variable names, ``+ - * / // % **``, unary minus/plus,
parentheses and ``abs min max round`` are allowed; anything else (attribute
access, subscripts, ``__import__``, lambdas, comparisons…) is refused before
evaluation. Exponents and intermediate magnitudes are bounded so that a
pack cannot make the box compute ``9**9**9``. Python's ``eval`` is never used.
"""

from __future__ import annotations

import ast
import math
import random
import re
import unicodedata
from functools import lru_cache
from typing import Any

MAX_EXPRESSION_LENGTH = 500
MAX_NODES = 200  # ast nodes in one expression
MAX_EXPONENT = 64
MAX_MAGNITUDE = 10**18
_FUNCTIONS = {"abs": abs, "min": min, "max": max, "round": round}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ExpressionError(ValueError):
    """The expression is not allowed or cannot be computed (the message says why)."""


def parse_expression(expr: str) -> ast.Expression:
    """Parse and vet ``expr``; raises :class:`ExpressionError` for anything not allowed.

    The tree is shared between callers (nothing here changes it): an exercise's few
    expressions are evaluated at every answer, and parsing and vetting them again was
    most of the cost of checking a generated question."""
    if not isinstance(expr, str):
        raise ExpressionError("an expression must be a string")
    return _parsed(expr)


@lru_cache(maxsize=1024)
def _parsed(expr: str) -> ast.Expression:
    if len(expr) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"not a valid expression: {exc.msg}") from None
    count = 0
    for node in ast.walk(tree):
        count += 1
        if count > MAX_NODES:
            raise ExpressionError("expression too complex")
        if isinstance(node, (ast.Expression, ast.Load, ast.Add, ast.Sub, ast.Mult, ast.Div,
                             ast.FloorDiv, ast.Mod, ast.Pow, ast.USub, ast.UAdd,
                             ast.BinOp, ast.UnaryOp, ast.Name)):
            continue
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise ExpressionError(f"only numbers are allowed, not {node.value!r}")
            continue
        if isinstance(node, ast.Call):
            if (not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS
                    or node.keywords or not node.args):
                raise ExpressionError("only abs(), min(), max() and round() may be called")
            continue
        raise ExpressionError(f"{type(node).__name__} is not allowed in an expression")
    return tree


def expression_names(expr: str) -> set[str]:
    """Variable names an expression uses (function names excluded)."""
    tree = parse_expression(expr)
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called}


def evaluate(expr: str, variables: dict[str, int | float] | None = None) -> int | float:
    """Compute ``expr`` with ``variables``; raises :class:`ExpressionError` when refused."""
    tree = parse_expression(expr)
    return _eval(tree.body, variables or {})


def _check(value: float) -> int | float:
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError("the result is not a finite number")
    if abs(value) > MAX_MAGNITUDE:
        raise ExpressionError("a number in the computation is too large")
    return value


def _eval(node: ast.AST, env: dict[str, Any]) -> int | float:
    if isinstance(node, ast.Constant):
        return _check(node.value)
    if isinstance(node, ast.Name):
        if node.id not in env:
            raise ExpressionError(f"unknown variable {node.id!r}")
        value = env[node.id]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ExpressionError(f"variable {node.id!r} is not a number")
        return _check(value)
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, env)
        return _check(-operand if isinstance(node.op, ast.USub) else +operand)
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, env), _eval(node.right, env)
        op = node.op
        try:
            if isinstance(op, ast.Add):
                return _check(left + right)
            if isinstance(op, ast.Sub):
                return _check(left - right)
            if isinstance(op, ast.Mult):
                return _check(left * right)
            if isinstance(op, ast.Div):
                return _check(left / right)
            if isinstance(op, ast.FloorDiv):
                return _check(left // right)
            if isinstance(op, ast.Mod):
                return _check(left % right)
            if isinstance(op, ast.Pow):
                # Check before computing: 10**10**6 would take seconds and megabytes.
                if abs(right) > MAX_EXPONENT:
                    raise ExpressionError(f"exponent larger than {MAX_EXPONENT}")
                if right > 0 and abs(left) > 1 and right * math.log10(abs(left)) > 18:
                    raise ExpressionError("a number in the computation is too large")
                result = left ** right
                if isinstance(result, complex):
                    raise ExpressionError("the result is not a real number")
                return _check(result)
        except ZeroDivisionError:
            raise ExpressionError("division by zero") from None
        except OverflowError:
            raise ExpressionError("a number in the computation is too large") from None
    if isinstance(node, ast.Call):
        args = [_eval(a, env) for a in node.args]
        name = node.func.id  # type: ignore[attr-defined]  (vetted by parse_expression)
        try:
            if name == "abs":
                if len(args) != 1:
                    raise ExpressionError("abs() takes one number")
                return _check(abs(args[0]))
            if name == "round":
                if len(args) not in (1, 2) or (len(args) == 2 and not isinstance(args[1], int)):
                    raise ExpressionError("round() takes a number and optional whole digits")
                if len(args) == 2 and abs(args[1]) > 18:
                    raise ExpressionError("round() digits must be between -18 and 18")
                return _check(round(*args))
            return _check(_FUNCTIONS[name](*args))
        except TypeError as exc:
            raise ExpressionError(str(exc)) from None
    raise ExpressionError(f"{type(node).__name__} is not allowed")  # pragma: no cover


# --- generated questions -------------------------------------------------------------

def draw_variables(question: dict, rng: random.Random | None = None,
                   avoid: dict | None = None, attempts: int = 50) -> dict[str, int]:
    """Draw each variable uniformly in its inclusive range, never repeating ``avoid``.

    ``avoid`` is the previous draw shown to this learner: the same numbers twice in a
    row looks like a bug and lets a learner copy the last answer.
    """
    rng = rng or random.Random()
    spec = question.get("variables") or {}
    total = 1
    for bounds in spec.values():
        total *= max(1, int(bounds["max"]) - int(bounds["min"]) + 1)
    values: dict[str, int] = {}
    for _ in range(attempts):
        values = {name: rng.randint(int(b["min"]), int(b["max"])) for name, b in spec.items()}
        if values != avoid or total <= 1:
            return values
    # A tiny range kept hitting the previous draw: step the first variable instead.
    name = next(iter(spec))
    lo, hi = int(spec[name]["min"]), int(spec[name]["max"])
    values[name] = lo + (values[name] - lo + 1) % (hi - lo + 1)
    return values


def _substitute(text: str, values: dict[str, Any]) -> str:
    def repl(match: re.Match) -> str:
        key = match.group(1)
        return _format_number(values[key]) if key in values else match.group(0)

    return _PLACEHOLDER.sub(repl, text or "")


def _format_number(value: Any) -> str:
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return f"{value:.10g}"
    return str(value)


def render_generated(question: dict, values: dict[str, int]) -> dict:
    """The question as a learner sees it: ``{a}`` placeholders filled, the answer computed.

    ``{answer}`` is available in the explanation and hints.
    """
    answer = evaluate(question["answer"], values)
    filled = {**values, "answer": answer}
    out = dict(question)
    out["prompt"] = _substitute(question.get("prompt", ""), filled)
    if "explanation" in question:
        out["explanation"] = _substitute(question["explanation"], filled)
    if "hints" in question:
        out["hints"] = [_substitute(h, filled) for h in question["hints"]]
    out["values"] = dict(values)
    out["computed_answer"] = answer
    return out


# --- answer checking -----------------------------------------------------------------

def normalize_text(text: str) -> str:
    """Case-, accent- and space-insensitive form: ' Bruxellés ' == 'bruxelles'."""
    decomposed = unicodedata.normalize("NFKD", str(text))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


def _to_number(given: Any) -> float | None:
    if isinstance(given, bool):
        return None
    if isinstance(given, (int, float)):
        return float(given)
    if isinstance(given, str):
        text = given.strip().replace(" ", "").replace("\u00a0", "")
        if text.count(",") == 1 and "." not in text:
            text = text.replace(",", ".")  # "3,5" is how much of the world writes 3.5
        try:
            value = float(text)
        except ValueError:
            return None
        return value if math.isfinite(value) else None
    return None


def _close(given: Any, expected: float, tolerance: float) -> bool:
    number = _to_number(given)
    if number is None:
        return False
    # A little slack for binary floating point (0.1 + 0.2), never more than asked.
    return abs(number - float(expected)) <= float(tolerance) + 1e-9 * max(1.0, abs(expected))


def check_answer(question: dict, given: Any, values: dict | None = None) -> bool:
    """Whether ``given`` answers ``question`` (``values``: the draw of a generated question)."""
    kind = question.get("type")
    if kind == "single_choice":
        try:
            return int(given) == int(question["answer"]) and not isinstance(given, bool)
        except (TypeError, ValueError):
            return False
    if kind == "multiple_choice":
        if isinstance(given, (str, bytes)) or not hasattr(given, "__iter__"):
            return False
        try:
            chosen = {int(g) for g in given}
        except (TypeError, ValueError):
            return False
        return chosen == {int(a) for a in question["answers"]}
    if kind == "numeric":
        return _close(given, question["answer"], question.get("tolerance", 0))
    if kind == "text":
        wanted = normalize_text(given) if isinstance(given, str) else None
        return bool(wanted) and any(normalize_text(a) == wanted for a in question["answers"])
    if kind == "generated":
        if values is None:
            raise ValueError("a generated question needs the values that were drawn")
        return _close(given, evaluate(question["answer"], values), question.get("tolerance", 0))
    if kind == "perseus":
        from .perseus import grade

        return grade(question, given)[0] == "correct"
    raise ValueError(f"unknown question type {kind!r}")
