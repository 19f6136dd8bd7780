"""An agent's presence Lease (``lbaas-agent-<id>``): "I am alive, and these are my labels".

Every agent reads all presence Leases to know which agents are live (held and not expired
for its :class:`~lbaas.leases.Observer`) and what labels they have, and feeds them to
:func:`~lbaas.agents.assignment.assign`. Presence guards nothing by itself, so an agent takes
its presence Lease at once, even from an earlier process with the same id (with a warning:
two live processes with one id would take turns, which is a configuration error).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping

from lbaas.leases import (
    AGENT_LABELS_ANNOTATION,
    KIND_AGENT,
    LeaseRecord,
    LeaseStore,
    agent_lease_name,
    our_labels,
)

log = logging.getLogger(__name__)


class Presence:
    """Blocking renew and release of one agent's presence Lease (run them in a thread)."""

    def __init__(
        self,
        store: LeaseStore,
        agent_id: str,
        incarnation: str,
        labels: Mapping[str, str],
        lease_duration: float,
    ) -> None:
        self.store, self.agent_id, self.incarnation = store, agent_id, incarnation
        self.labels = json.dumps(dict(labels), sort_keys=True)
        self.lease_duration = lease_duration
        self.record: LeaseRecord | None = None

    def renew(self) -> LeaseRecord | None:
        """Renew (or create, or take over) the presence Lease; None if a race was lost."""
        known = self.record
        if known is not None and known.held_by(self.agent_id, self.incarnation):
            self.record = self.store.update(known.renewed())
            if self.record is not None:
                return self.record
        name = agent_lease_name(self.agent_id)
        current = self.store.get(name) or LeaseRecord(name, labels=our_labels(KIND_AGENT))
        if current.holder == self.agent_id and current.incarnation != self.incarnation:
            log.warning(
                "agent %s: presence Lease was held by another process with this id (an earlier"
                " run, or two agents configured with one id)",
                self.agent_id,
            )
        annotations = {**current.annotations, AGENT_LABELS_ANNOTATION: self.labels}
        mine = dataclasses.replace(current, annotations=annotations).acquired(
            self.agent_id, self.incarnation, self.lease_duration
        )
        write = self.store.update if current.resource_version else self.store.create
        self.record = write(mine)
        return self.record

    def release(self) -> None:
        """Clear the holder: others stop counting this agent as live at once."""
        if self.record is not None:
            self.store.release(self.record, self.agent_id, "stopped")
            self.record = None
