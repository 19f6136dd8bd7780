"""The toolkit's listener checks (TCP and UDP) against real sockets on 127.x addresses."""

from __future__ import annotations

import os
import socket

from lbaas.drivers.toolkit import listen


def test_udp_squatter_is_in_use_and_tcp_is_not_disturbed() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.3.251.2", 0))
        port = squatter.getsockname()[1]
        problem = listen.port_problem("127.3.251.2", port, ours=set(), udp=True)
        assert problem is not None and problem.reason == "AddressInUse"
        assert f"{port}/udp" in problem.user_message
        assert listen.port_problem("127.3.251.2", port, ours={os.getpid()}, udp=True) is None
        assert ("127.3.251.2", port) in listen.held_listeners({os.getpid()}, udp=True)
        assert listen.port_problem("127.3.251.2", port, ours=set()) is None  # TCP is free


def test_unspecified_and_multicast_are_not_allowed() -> None:
    for address in ("0.0.0.0", "::", "224.0.0.1"):
        problem = listen.not_allowed(address)
        assert problem is not None and problem.reason == "AddressNotAllowed"
    assert listen.not_allowed("127.3.251.3") is None
