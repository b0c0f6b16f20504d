"""Following the active branch of a session stored as a tree of entries (Pi, Claude Code, Droid)."""

from __future__ import annotations

from typing import Any


def active_branch(records: list[dict[str, Any]], id_key: str, parent_key: str) -> list[dict[str, Any]]:
    """The entries from the root to the newest leaf, in order.

    Entries without an id (headers, queue bookkeeping) are not part of the tree and are left out.
    A session rewound and continued keeps only the branch it was continued on. A parent id is
    resolved to the newest entry with that id written before the child, since some agents reuse ids.
    """
    latest: dict[Any, int] = {}
    parent_of: list[int | None] = []
    nodes = [r for r in records if r.get(id_key) is not None]
    for index, node in enumerate(nodes):
        parent_of.append(latest.get(node.get(parent_key)))
        latest[node[id_key]] = index
    branch: list[dict[str, Any]] = []
    index = len(nodes) - 1 if nodes else None
    while index is not None:
        branch.append(nodes[index])
        index = parent_of[index]
    return branch[::-1]
