"""The TLS step of a tree's reconcile on its agent: watch what it names, resolve, report.

``TreeTLS.resolve`` tells the store which Secrets and ConfigMaps the tree names (the store
watches exactly those), resolves them into driver material and exports each certificate's
expiry as a metric; ``report`` turns the outcome into what the VIP's status says
(``status.tls``, ``CertificatesValid``; both removed from a VIP that no longer terminates TLS).
A changed Secret wakes the trees that name it (``trigger``): they apply the new material.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from lbaas import metrics
from lbaas.kube.client import Kube
from lbaas.tls.resolve import SECRETS_UNREADABLE, Resolution, Seen, refs_of, resolve
from lbaas.tls.status import CERTIFICATES_VALID, condition, tls_status
from lbaas.tls.store import ReferenceStore, Unavailable
from lbaas.trees.report import VIPExtra
from lbaas.trees.tree import Tree

VipKey = tuple[str, str]
PLAIN = VIPExtra(fields={"tls": None}, drop=(CERTIFICATES_VALID,))
"""A VIP without TLS: no ``status.tls``, no certificate condition."""


class TreeTLS:
    """One per agent: its store of named objects and its certificate-expiry series."""

    def __init__(
        self, kube: Kube, *, warning: timedelta, trigger: Callable[[VipKey], None]
    ) -> None:
        self.store = ReferenceStore(kube, changed=trigger)
        self.warning = warning
        self._exported: dict[VipKey, set[str]] = {}

    async def resolve(self, tree: Tree, now: datetime | None = None) -> Resolution:
        """The tree's TLS material (empty when it has none), or the problem with it."""
        assert tree.vip_spec is not None, "an invalid VIP spec is refused before TLS"
        key = (tree.namespace, tree.vip.name)
        pools = [(node.name, node.spec) for node in tree.pools]
        refs = refs_of(tree.namespace, tree.vip_spec, pools)
        terminated = tree.vip_spec.tls is not None
        try:
            await self.store.want(key, refs)
        except Unavailable as exc:
            return Resolution(problem=str(exc), reason=SECRETS_UNREADABLE, terminated=terminated)
        found = resolve(
            tree.namespace,
            tree.vip_spec,
            pools,
            self.store.lookup,
            now=now or datetime.now(UTC),
        )
        self._export(key, found.seen)
        return found

    def report(self, resolution: Resolution, now: datetime | None = None) -> VIPExtra:
        """What the VIP's status says of its certificates."""
        if not resolution.terminated:
            return PLAIN
        cond = condition(resolution, now=now or datetime.now(UTC), warning=self.warning)
        if resolution.reason == SECRETS_UNREADABLE:  # nothing read: keep what was said
            return VIPExtra(conditions=(cond,))
        return VIPExtra(fields={"tls": tls_status(resolution)}, conditions=(cond,))

    def release(self, key: VipKey) -> None:
        """The VIP is gone or no longer this agent's: stop watching for it, drop its series."""
        self.store.release(key)
        self._export(key, ())

    def close(self) -> None:
        """Stop every watch (the agent stops)."""
        self.store.close()

    def _export(self, key: VipKey, seen: tuple[Seen, ...]) -> None:
        names = {s.name for s in seen}
        for gone in self._exported.pop(key, set()) - names:
            metrics.CERTIFICATE_EXPIRY.remove(key[0], key[1], gone)
        for s in seen:
            metrics.CERTIFICATE_EXPIRY.labels(key[0], key[1], s.name).set(s.not_after.timestamp())
        if names:
            self._exported[key] = names
