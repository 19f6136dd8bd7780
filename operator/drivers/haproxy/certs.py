"""Certificate files of the load balancers a device serves: where they live, what they hold,
writing them (mode 0600, removed with their VIP) and swapping them into the running HAProxy
without a reload.

Below ``<stateDir>/certs`` (``crt-base`` and ``ca-base`` of ``haproxy.cfg``, so fragments and
crt-lists name them relative, and a fragment stays the same when only a certificate's content
changes)::

    <ns>__<name>/l/<listener>/crt-list                 the certificates in order, one a line
    <ns>__<name>/l/<listener>/crt/<certificate>.pem    leaf, chain, then the key
    <ns>__<name>/l/<listener>/client-ca.pem            client validation's CA bundle
    <ns>__<name>/p/<pool>/ca.pem                       the CA bundle members are verified with

A listener's certificates are a ``crt-list`` (the first line is the default certificate, the
others are picked by SNI from their names): a bind line takes at most 64 words, a VIP up to
64 certificates. HAProxy resolves the crt-list's own path without ``crt-base`` (the fragment
names it absolute), its lines with it. Its content is part of the fragment's structure.

A tree from the operator carries the keys (``Sensitive``); a tree read back from a VIP file
carries only their fingerprints (``documents.StoredKey``): its files are those on disk.

Rotation: a fragment names files, not their content, so a renewed certificate leaves the
fragment as it was and takes the runtime path: ``set ssl cert <file>`` with the new PEM and
``commit ssl cert <file>`` (CA bundles: ``set/commit ssl ca-file``), then the file is written
for the next start. A refusal falls back to a reload, which reads the files.

In a reload, the files of the batch's VIPs are written before ``haproxy -c`` (which loads
them) and put back as they were if that VIP is refused or the reload fails
(:class:`CertWriter`). A process killed in between may leave a VIP's newer, valid certificate
on disk with its older fragment: served at the next start, which is what the operator asked.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Mapping
from pathlib import Path

from lbaas.drivers.haproxy import runtime
from lbaas.drivers.haproxy.runtime import CLIError
from lbaas.drivers.haproxy.store import file_stem
from lbaas.drivers.model import Listener, LoadBalancer, Sensitive
from lbaas.drivers.toolkit.files import read_text, write_many

CRT, CA, LIST = "crt", "ca", "list"
MAX_NAME_BYTES = 251
"""A certificate's name makes its file name (``<name>.pem``, 255 bytes at most)."""


def crt_file(key: str, listener: str, certificate: str) -> str:
    return f"{file_stem(key)}/l/{listener}/crt/{certificate}.pem"


def crt_list_file(key: str, listener: str) -> str:
    return f"{file_stem(key)}/l/{listener}/crt-list"


def crt_list(lb: LoadBalancer, listener: Listener) -> str:
    """The crt-list of a listener: its certificates' files in order, relative to crt-base."""
    assert listener.tls is not None
    return "".join(
        f"{crt_file(lb.key, listener.name, c.name)}\n" for c in listener.tls.certificates
    )


def client_ca_file(key: str, listener: str) -> str:
    return f"{file_stem(key)}/l/{listener}/client-ca.pem"


def pool_ca_file(key: str, pool: str) -> str:
    return f"{file_stem(key)}/p/{pool}/ca.pem"


def _revealed(key: Sensitive) -> str | None:
    try:
        return key.reveal()
    except ValueError:  # a stored tree's placeholder: the file on disk holds the key
        return None


def wanted(lb: LoadBalancer) -> dict[str, tuple[str, str]] | None:
    """Relative file → (kind, content) that ``lb`` needs; None when its keys are not in it
    (a tree read back from its file): the files on disk are then the truth."""
    files: dict[str, tuple[str, str]] = {}
    for listener in lb.listeners:
        if listener.tls is None:
            continue
        files[crt_list_file(lb.key, listener.name)] = (LIST, crt_list(lb, listener))
        for cert in listener.tls.certificates:
            key = _revealed(cert.private_key)
            if key is None:
                return None
            pem = cert.certificate if cert.certificate.endswith("\n") else cert.certificate + "\n"
            files[crt_file(lb.key, listener.name, cert.name)] = (CRT, pem + key)
        if listener.tls.client_validation is not None:
            pem = listener.tls.client_validation.ca.pem
            files[client_ca_file(lb.key, listener.name)] = (CA, pem)
    for pool in lb.pools:
        if pool.tls is not None and pool.tls.ca is not None:
            files[pool_ca_file(lb.key, pool.name)] = (CA, pool.tls.ca.pem)
    return files


def changed(root: Path, files: Mapping[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """The files whose content on disk is not ``files``'s."""
    return {rel: item for rel, item in files.items() if read_text(root / rel) != item[1]}


def write(root: Path, files: Mapping[str, tuple[str, str]]) -> None:
    """Write ``files`` (mode 0600 in 0700 directories), synced as one batch."""
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_many({root / rel: content for rel, (_, content) in files.items()}, 0o600)


def prune(root: Path, key: str, keep: Mapping[str, object]) -> None:
    """Remove the files of ``key`` that ``keep`` does not name (a certificate no longer
    referenced, a VIP that stopped terminating TLS)."""
    base = root / file_stem(key)
    if not base.is_dir():
        return
    kept = {root / rel for rel in keep}
    for path in sorted(base.rglob("*"), reverse=True):
        if path.is_file() and path not in kept:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def remove(root: Path, key: str) -> None:
    """Every file of ``key`` (its VIP is gone from the device)."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(root / file_stem(key))


def swap(socket: Path, root: Path, files: Mapping[str, tuple[str, str]]) -> None:
    """Give the running HAProxy the new content of ``files`` (certificates and CA bundles it
    loaded from them) without a reload; raise :class:`CLIError` when it refuses one."""
    for rel, (kind, content) in files.items():
        if kind == LIST:
            continue  # part of the structure: a change of it reloads
        path = root / rel
        word = "cert" if kind == CRT else "ca-file"
        answer = runtime.command_payload(socket, f"set ssl {word} {path}", content)
        if "transaction created" not in answer.lower():
            with contextlib.suppress(CLIError):
                runtime.command(socket, f"abort ssl {word} {path}")
            raise CLIError(f"set ssl {word} {path}: {answer.strip()[:300]}")
        answer = runtime.command(socket, f"commit ssl {word} {path}")
        if "Success!" not in answer:
            raise CLIError(f"commit ssl {word} {path}: {answer.strip()[:300]}")


class CertWriter:
    """The files of a batch's VIPs, written before ``haproxy -c`` and put back as they were
    for a VIP that is refused, or for all when the reload fails."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._before: dict[str, dict[Path, str | None]] = {}

    def write(self, key: str, files: Mapping[str, tuple[str, str]]) -> None:
        todo = changed(self.root, files)
        if not todo:
            return
        before = self._before.setdefault(key, {})
        for rel in todo:
            before.setdefault(self.root / rel, read_text(self.root / rel))
        write(self.root, todo)

    def undo(self, key: str) -> None:
        before = self._before.pop(key, {})
        write_many(before, 0o600)
        for path in before:  # directories made for files that are gone again
            parent = path.parent
            while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent

    def undo_all(self) -> None:
        for key in list(self._before):
            self.undo(key)

    def keep(self) -> None:
        """The reload took them: nothing is to be put back."""
        self._before.clear()
