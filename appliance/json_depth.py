"""How deeply a parsed JSON value nests, checked without recursion (hostile input has no limit)."""

from __future__ import annotations

from typing import Any


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` holds containers nested more than ``limit`` levels deep (the value
    itself is level 1); iterative, so that any depth is answered without a RecursionError."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict | list):
            continue
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
