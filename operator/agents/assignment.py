"""Which agent should own which Device: a pure, deterministic, sticky fair-share assignment.

Every agent runs :func:`assign` on what it read from the API server (Devices, the presence
Leases of live agents and the device Leases' holders) and acts only on its own part: it takes
the free Devices assigned to it and hands over those assigned elsewhere. No agent tells
another what to do, so the answer must not depend on who computes it: every choice is broken
by names or by a hash of names (SHA-based, not Python's per-process salted ``hash``).

The algorithm, in three steps:

1. **Sticky.** A Device whose current owner is live and eligible (its ``agentSelector``
   matches the owner's labels) stays with it.
2. **Place.** Devices without such an owner go, most constrained first (fewest eligible
   agents, then name), to the least loaded eligible agent (ties: a hash of device and agent,
   so that a fresh start spreads Devices like rendezvous hashing).
3. **Balance.** While some agent ``a`` owns a Device that an agent ``b`` with
   ``load(b) <= load(a) - 2`` could own, move one such Device (from the most loaded agent, to
   the least loaded eligible one). Each move lowers the sum of squared loads by at least 2,
   so this ends.

What it guarantees:

- Without selectors (every agent eligible for every Device): ``max - min <= 1``. If an agent
  had two more than another, it owns a Device the other could take, and step 3 would move it.
- With selectors: no Device sits on an agent that has two more Devices than another agent
  eligible for it. That is the ±1 rule among agents eligible for the same Devices. It is not
  a global optimum of the bipartite balancing problem: evening out loads along a chain (a→b,
  b→c) would move Devices away from owners that are not overloaded, which stickiness forbids.
- Stickiness: a Device leaves a live, eligible owner only when that owner has, once the free
  Devices are placed, two more than an agent that may own it. So an assignment that is
  already balanced is returned unchanged (no churn when nothing changed). Without selectors,
  placing never overloads anyone, so only owners that had two more than some agent before
  give anything away; a new agent receives ``floor(m/n)`` or more Devices, all taken from the
  most loaded agents; Devices of a departed agent move and nothing else does. With selectors
  a placed Device may push a sticky one to the only agent that can take it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Protocol


class Selector(Protocol):
    """What :func:`assign` needs of a Device's ``spec.agentSelector`` (a LabelSelector)."""

    def matches(self, labels: dict[str, str]) -> bool: ...


def _rank(device: str, agent: str) -> bytes:
    """A tie-breaker that every process computes alike, spread like rendezvous hashing."""
    return hashlib.blake2b(f"{device}\0{agent}".encode(), digest_size=8).digest()


def eligible_agents(
    selector: Selector | None, agents: Mapping[str, Mapping[str, str]]
) -> list[str]:
    """The agents (sorted) whose labels ``selector`` matches; all of them for no selector."""
    return sorted(
        a for a, labels in agents.items() if selector is None or selector.matches(dict(labels))
    )


def assign(
    devices: Mapping[str, Selector | None],
    agents: Mapping[str, Mapping[str, str]],
    owners: Mapping[str, str | None],
) -> dict[str, str | None]:
    """The desired owner of every Device (None: no live agent is eligible for it).

    :param devices: Device name → its ``agentSelector`` (None: any agent).
    :param agents: live agent id → its labels.
    :param owners: Device name → the agent holding its Lease now (None or absent: nobody).
        Holders that are not live or not eligible are ignored.
    :returns: Device name → agent id, for every Device in ``devices``.
    """
    eligible = {d: eligible_agents(sel, agents) for d, sel in devices.items()}
    result: dict[str, str | None] = dict.fromkeys(devices)
    owned: dict[str, set[str]] = {a: set() for a in agents}

    def give(device: str, agent: str) -> None:
        result[device] = agent
        owned[agent].add(device)

    for device in sorted(devices):
        owner = owners.get(device)
        if owner is not None and owner in owned and owner in eligible[device]:
            give(device, owner)
    unplaced = [d for d in devices if result[d] is None and eligible[d]]
    for device in sorted(unplaced, key=lambda d: (len(eligible[d]), d)):
        give(device, min(eligible[device], key=lambda a: (len(owned[a]), _rank(device, a))))
    _balance(result, owned, eligible)
    return result


def _balance(
    result: dict[str, str | None], owned: dict[str, set[str]], eligible: Mapping[str, list[str]]
) -> None:
    """Step 3: move single Devices from an agent to one with at least two fewer."""
    while True:
        move: tuple[str, str, str] | None = None
        for source in sorted(owned, key=lambda a: (-len(owned[a]), a)):
            load = len(owned[source])
            if load < 2:
                break  # sorted by load: nobody further down can give away
            best: tuple[int, bytes, str, str] | None = None
            for device in owned[source]:
                for target in eligible[device]:
                    if len(owned[target]) <= load - 2:
                        candidate = (len(owned[target]), _rank(device, target), device, target)
                        if best is None or candidate < best:
                            best = candidate
            if best is not None:
                move = (source, best[2], best[3])
                break
        if move is None:
            return
        source, device, target = move
        owned[source].discard(device)
        owned[target].add(device)
        result[device] = target


def loads(assignment: Mapping[str, str | None], agents: Mapping[str, object]) -> dict[str, int]:
    """Devices per agent in ``assignment`` (every agent listed, 0 included)."""
    counts = dict.fromkeys(agents, 0)
    for agent in assignment.values():
        if agent is not None:
            counts[agent] = counts.get(agent, 0) + 1
    return counts
