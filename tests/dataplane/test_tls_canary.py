"""Private keys in every file the drivers write (the secret canary, issue 19): each real
driver serves a TLS tree, renews its certificate and deletes it; then every file of its state
directory is searched for the keys, in PEM and in base64 (``tlskit.leaked_forms``). The key
may be in the files the data plane reads, and only there, mode 0600; never in a tree file, a
configuration, a log, a state or control file; and none is left once the VIP is deleted."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from dataplane.envoysupport import EnvoyDevice
from dataplane.hxsupport import Backends, Device, free_vip
from dataplane.tlssupport import served, served_fingerprint

from lbaas.drivers.model import Listener, ListenerTLS, LoadBalancer, Member, Pool, Protocol
from tlskit import issue, leaked_forms


def tls_tree(vip: tuple[str, int], backend: Any, certificate: Any) -> LoadBalancer:
    listener = Listener("l", vip[1], Protocol.TERMINATED_HTTPS, default_pool="p",
                        tls=ListenerTLS((certificate,)))  # fmt: skip
    pool = Pool("p", protocol=Protocol.HTTP, members=(Member("m", backend.address, backend.port),))
    return LoadBalancer("dp", "canary", vip[0], (listener,), (pool,))


def holders(state_dir: Path, keys: list[bytes]) -> dict[Path, int]:
    """Every file holding a form of a key → its mode."""
    found = {}
    for path in state_dir.rglob("*"):
        if not path.is_file() or stat.S_ISSOCK(path.lstat().st_mode):
            continue
        text = path.read_bytes().decode(errors="replace").replace("\\n", "\n")
        if any(form in text for key in keys for form in leaked_forms(key)):
            found[path] = path.stat().st_mode & 0o777
    return found


def exercise(apply: Any, delete: Any, state_dir: Path, backends: Backends) -> list[bytes]:
    """Serve, renew and delete a TLS tree; the keys used."""
    backend = backends.http(1)[0]
    vip = free_vip()
    first, second = issue("canary", names=("c.test",)), issue("canary2", names=("c.test",))
    apply(tls_tree(vip, backend, served("canary", first)))
    assert served_fingerprint(*vip, "c.test") == first.fingerprint
    apply(tls_tree(vip, backend, served("canary", second)))
    assert served_fingerprint(*vip, "c.test") == second.fingerprint
    during = holders(state_dir, [first.key_pem, second.key_pem])
    assert during, "the data plane's file holds the key"
    assert set(during.values()) == {0o600}, during
    assert all("certs" in p.parts or "secrets" in p.parts for p in during), during
    delete("dp/canary")
    return [first.key_pem, second.key_pem]


@pytest.mark.haproxy
def test_haproxy_keeps_keys_only_in_its_certificate_files(
    device: Device, backends: Backends
) -> None:
    keys = exercise(
        lambda lb: device.driver.apply(device.handle, lb),
        lambda key: device.driver.delete(device.handle, key),
        device.state_dir,
        backends,
    )
    assert holders(device.state_dir, keys) == {}, "nothing left once the VIP is gone"


@pytest.mark.envoy
def test_envoy_keeps_keys_only_in_its_secret_files(envoy: EnvoyDevice, backends: Backends) -> None:
    keys = exercise(
        envoy.apply,
        lambda key: envoy.driver.delete(envoy.handle, key),
        envoy.state_dir,
        backends,
    )
    assert holders(envoy.state_dir, keys) == {}, "nothing left once the VIP is gone"
