"""The files Envoy watches (one inotify instance each) against what the host allows: with
``endpoints: files`` every pool's EDS file is one more, and an Envoy that needs one more than
the host lets it have aborts; the driver refuses the trees that would need it instead
(``InotifyLimit``). With ``endpoints: inline`` a pool costs none.

The host's limit (``fs.inotify.max_user_instances``) is shared by every process of the user:
these tests lower what the driver reads as the limit (its file, monkeypatched) rather than
spend the host's, which other processes need.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from dataplane.envoysupport import EnvoyDevice, http_lb
from dataplane.hxsupport import Backends, free_port, get, net

from lbaas.drivers.envoy import inotify
from lbaas.drivers.errors import DriverError

pytestmark = pytest.mark.envoy

ADDRESS = net(10, 240)


def _trees(count: int, backends: Backends) -> list:  # type: ignore[type-arg]
    (b,) = backends.http(1)
    return [http_lb((ADDRESS, free_port(ADDRESS)), [b], name=f"w{i}") for i in range(count)]


def test_trees_past_the_hosts_watch_limit_are_refused_and_envoy_lives(
    make_envoy: Callable[..., EnvoyDevice], backends: Backends, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    envoy = make_envoy(endpoints="files")
    first, *batch = _trees(9, backends)
    envoy.apply(first)
    pid = envoy.pid()
    assert pid is not None and inotify.instances(pid) == 3  # LDS, CDS, one EDS file
    # A host that lets this Envoy watch 6 files (others' instances left out: they change as
    # other processes come and go): 3 more pools, not 8.
    limit = tmp_path / "max_user_instances"
    limit.write_text(f"{inotify.MARGIN + 6}\n")
    monkeypatch.setattr(inotify, "LIMIT_FILE", limit)
    monkeypatch.setattr(inotify, "used_by_others", lambda exclude: 0)
    outcome = envoy.driver.apply_many(envoy.handle, batch)
    served = [lb for lb in batch if outcome[lb.key] is None]
    refused = [outcome[lb.key] for lb in batch if outcome[lb.key] is not None]
    assert served == batch[:3] and len(refused) == 5, outcome  # the batch's last refused
    for error in refused:
        assert isinstance(error, DriverError) and error.reason == "InotifyLimit"
        assert error.retryable and "raise fs.inotify.max_user_instances" in error.user_message
    assert envoy.pid() == pid and inotify.instances(pid) == 6
    assert "would watch 7 files" in refused[0].user_message  # with it, one file too many
    for lb in [first, *served]:
        assert get(lb.address, lb.listeners[0].port)[1] == "b0"
    # Room made by another tree leaving: a refused one is applied when tried again.
    envoy.driver.delete(envoy.handle, first.key)
    assert envoy.driver.apply_many(envoy.handle, batch[3:4]) == {batch[3].key: None}
    assert inotify.instances(pid) == 6


def test_inline_endpoints_watch_no_file_per_pool(
    make_envoy: Callable[..., EnvoyDevice], backends: Backends
) -> None:
    envoy = make_envoy(endpoints="inline")
    lbs = _trees(20, backends)
    assert envoy.driver.apply_many(envoy.handle, lbs) == dict.fromkeys(lb.key for lb in lbs)
    pid = envoy.pid()
    assert pid is not None and inotify.instances(pid) == 2  # LDS and CDS only
    assert not list((envoy.state_dir / "xds" / "eds").glob("*.json"))
    assert all(get(lb.address, lb.listeners[0].port)[1] == "b0" for lb in lbs)
    for lb in lbs:
        assert envoy.driver.verify(envoy.handle, lb) == []
