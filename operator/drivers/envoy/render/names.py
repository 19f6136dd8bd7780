"""Names of the Envoy resources and files of a tree.

Every resource a tree owns is named ``<namespace>/<name>/<part>``: Kubernetes names hold no
``/``, so the tree's key is the name's first two segments (``key_of``), which is how ``orphans``
and a refusal from Envoy find the tree a resource belongs to. File names replace ``/`` with
``__`` (a DNS label holds no ``_``: unambiguous).
"""

from __future__ import annotations

from lbaas.drivers.model import LoadBalancer

MAX_FILE_NAME = 245
"""The longest file name the driver writes: the file systems' 255-byte limit on a name, less
the 10 bytes ``atomic_write``'s temporary name adds (``.<name>.XXXXXXXX``)."""

NO_POOL = "lbaas/no-pool"
"""A cluster no tree defines: a TCP listener without a pool closes its connections."""


def listener_name(key: str, listener: str) -> str:
    return f"{key}/{listener}"


def cluster_name(key: str, pool: str) -> str:
    return f"{key}/{pool}"


def secret_name(key: str, listener: str, certificate: str) -> str:
    return f"{key}/{listener}/{certificate}"


def key_of(resource: str) -> str | None:
    """The tree key of a resource name, or None for a name no tree owns."""
    parts = resource.split("/")
    if len(parts) < 3 or not parts[0] or not parts[1]:
        return None
    return f"{parts[0]}/{parts[1]}"


def stem(name: str) -> str:
    """A resource name or tree key as a file name."""
    return name.replace("/", "__")


def key_of_stem(file_stem: str) -> str:
    namespace, _, rest = file_stem.partition("__")
    return f"{namespace}/{rest.split('__', 1)[0]}"


def file_names(lb: LoadBalancer) -> list[str]:
    """Every file name ``lb`` gives the device: its tree, an EDS file per pool, an SDS file per
    certificate."""
    names = [f"{stem(lb.key)}.json"]
    names += [f"{stem(cluster_name(lb.key, pool.name))}.json" for pool in lb.pools]
    for listener in lb.listeners:
        for cert in listener.tls.certificates if listener.tls is not None else ():
            names.append(f"{stem(secret_name(lb.key, listener.name, cert.name))}.json")
    return names


def too_long(lb: LoadBalancer) -> str | None:
    """Why ``lb``'s names cannot name its files (the longest one is over ``MAX_FILE_NAME``
    bytes), or None."""
    longest = max(file_names(lb), key=lambda n: len(n.encode()))
    size = len(longest.encode())
    if size <= MAX_FILE_NAME:
        return None
    return (
        f"the envoy driver names a file after namespace, name and pool (or listener and"
        f" certificate): {size} bytes, at most {MAX_FILE_NAME}: use shorter names"
    )
