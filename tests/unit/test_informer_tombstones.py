"""The informer cache against late answers: a deleted object never comes back as a ghost, and
a list taken while the watch runs (a new leader's relist) never drops what the watch saw since."""

from __future__ import annotations

from typing import Any

from lbaas.kube.informer import Informer
from lbaas.kube.resources import VIPS


def vip(version: int, name: str = "web", **meta: Any) -> dict[str, Any]:
    return {
        "kind": "VIP",
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": str(version), **meta},
    }


def informer() -> Informer:
    made = Informer(kube=None, resource=VIPS)  # type: ignore[arg-type]  # no I/O here
    seen: list[Any] = []
    made.handlers.append(seen.append)
    return made


def test_an_answer_older_than_the_deletion_is_not_cached() -> None:
    cache = informer()
    cache._apply("ADDED", vip(3, finalizers=["lbaas.dev/finalizer"]))
    cache._apply("DELETED", vip(5))
    # The agent's finalizer removal (version 4) answered after the watch reported the delete.
    cache.offer(vip(4, deletionTimestamp="2026-01-01T00:00:00Z"))
    assert cache.cache == {}
    cache.offer(vip(4))
    assert cache.cache == {}
    cache.offer(vip(6))  # a new object of the same name is not held back
    assert ("ns", "web") in cache.cache


def test_an_object_without_finalizers_being_deleted_is_gone_at_once() -> None:
    """Our write removed its last finalizer: the API server deletes it now. The cache says so
    at once (its address and capacity are free for others) rather than keep a ghost."""
    cache = informer()
    cache._apply("ADDED", vip(3, finalizers=["lbaas.dev/finalizer"]))
    cache.offer(vip(4, deletionTimestamp="2026-01-01T00:00:00Z", finalizers=[]))
    assert ("ns", "web") not in cache.cache


def test_a_relist_keeps_what_the_watch_added_after_the_list() -> None:
    """CI lost 30 new VIPs this way: the leader's relist listed at version 100, the watch
    delivered their creation (101...) before the list's answer was applied, and the diff
    reported them deleted. Nothing would ever have bound them."""
    cache = informer()
    cache._replace([vip(90, "old")], "95")
    cache._apply("ADDED", vip(101, "new"))
    cache._replace([vip(90, "old")], "100")
    assert sorted(name for _, name in cache.cache) == ["new", "old"]
    assert ("ns", "new") not in cache._deleted


def test_a_relist_does_not_revive_what_the_watch_deleted_after_the_list() -> None:
    cache = informer()
    cache._replace([vip(90, "old"), vip(91, "doomed")], "95")
    cache._apply("DELETED", vip(102, "doomed"))
    cache._replace([vip(90, "old"), vip(91, "doomed")], "100")
    assert sorted(name for _, name in cache.cache) == ["old"]


def test_a_relist_still_reports_what_was_deleted_before_the_list() -> None:
    """A deletion the watch missed (the list is newer than the cached copy) is reported."""
    cache = informer()
    cache._replace([vip(90, "old"), vip(91, "missed")], "95")
    seen: list[Any] = []
    cache.handlers.append(seen.append)
    cache._replace([vip(90, "old")], "100")
    assert sorted(name for _, name in cache.cache) == ["old"]
    assert [(c.key, c.new) for c in seen] == [(("ns", "missed"), None)]
