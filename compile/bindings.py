"""What a Relax variable stands for, through the bindings a mutator has seen (shared by the graph rewrites)."""

from __future__ import annotations

from tvm import relax


def bound_value(mutator: relax.PyExprMutator, expr: relax.Expr) -> relax.Expr:
    """The value `expr` stands for, through the variable bindings the mutator has emitted."""
    while isinstance(expr, relax.Var):
        value = mutator.lookup_binding(expr)
        if value is None:
            return expr
        expr = value
    return expr
