"""Following the active branch of a session stored as a tree of entries (Pi, Claude Code, Droid)."""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]
_FOLLOWS = "taken to follow the entry written before it"


def relink(
    records: list[Record], id_key: str, parent_key: str, *, absent: bool = True, dangling: str | None = "before"
) -> list[tuple[Record | None, str]]:
    """Repair damaged links in place (the records are the reader's own), and say which and why.

    An entry (after the first) is taken to follow the entry written before it when it lacks the parent
    key altogether (``absent``: formats that write null for a root) or names a parent that is not in
    the file: written nowhere before it (``dangling="before"``: formats that append entries after their
    parent) or nowhere at all (``"anywhere"``: formats that may write a parent after its child).
    """
    everywhere = {record.get(id_key) for record in records}
    written: set[Any] = set()
    repaired: list[tuple[Record | None, str]] = []
    previous = None
    for record in records:
        if record.get(id_key) is None:
            continue
        parent = record.get(parent_key)
        known = written if dangling == "before" else everywhere
        if previous is not None and absent and parent_key not in record:
            repaired.append((record, f"no {parent_key!r}; {_FOLLOWS}"))
            record[parent_key] = previous
        elif previous is not None and dangling and parent is not None and parent not in known:
            where = "written before it" if dangling == "before" else "in the file"
            repaired.append((record, f"{parent_key} {parent!r} names no entry {where}; {_FOLLOWS}"))
            record[parent_key] = previous
        previous = record[id_key]
        written.add(previous)
    return repaired


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
    at: int | None = len(nodes) - 1 if nodes else None
    while at is not None:
        branch.append(nodes[at])
        at = parent_of[at]
    return branch[::-1]
