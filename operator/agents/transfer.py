"""Why a Device changed owner: read from its Lease just before the new owner takes it.

A holder that lets go on purpose writes who it was and why into the released Lease
(annotations ``lbaas.dev/released-by`` and ``lbaas.dev/release-reason``, see
:meth:`lbaas.leases.LeaseRecord.released`); a Lease taken while still held was
expired. The new owner turns that into a :class:`Transfer`, which the runtime posts as an
Event on the Device ("agent b took over from a: lease expired").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from lbaas.leases import RELEASE_REASON_ANNOTATION, RELEASED_BY_ANNOTATION, LeaseRecord


class TransferReason(StrEnum):
    """Why a Device came to its new owner (also the ``reason`` label of the metric)."""

    NEW = "new"  # nobody held it before
    BALANCE = "balance"  # the previous owner handed it over to even out loads
    STOPPED = "stopped"  # the previous owner shut down and released it
    INELIGIBLE = "ineligible"  # released: its agentSelector no longer matches the old owner
    GONE = "gone"  # released: the Device had disappeared from the old owner's view
    EXPIRED = "expired"  # the previous owner stopped renewing (died, hung, partitioned)
    RESTARTED = "restarted"  # expired, held by an earlier process with this agent's id
    RESUMED = "resumed"  # this process held it already; its renewals had failed for a while


@dataclass(frozen=True)
class Transfer:
    """How a Device came to this agent: the third argument of ``on_acquired``."""

    reason: TransferReason
    previous_holder: str | None
    new_holder: str

    @property
    def message(self) -> str:
        """One sentence for the Event on the Device."""
        new, old = self.new_holder, self.previous_holder
        took = f"agent {new} took over from {old}"
        return {
            TransferReason.NEW: f"agent {new} owns the device",
            TransferReason.BALANCE: f"{took}: handed over by {old} for balance",
            TransferReason.STOPPED: f"{took}: {old} stopped (released)",
            TransferReason.INELIGIBLE: f"{took}: {old} no longer matches the agentSelector"
            " (released)",
            TransferReason.GONE: f"{took}: {old} no longer saw the device (released)",
            TransferReason.EXPIRED: f"{took}: lease expired",
            TransferReason.RESTARTED: f"agent {new} restarted: the lease of its previous run"
            " expired",
            TransferReason.RESUMED: f"agent {new} resumed the device after failed lease renewals",
        }[self.reason]


def transfer_for(record: LeaseRecord | None, agent_id: str, incarnation: str) -> Transfer:
    """Why the Lease ``record`` (as read before taking it, None: absent) comes to us."""
    if record is None:
        return Transfer(TransferReason.NEW, None, agent_id)
    if record.holder is None:
        previous = record.annotations.get(RELEASED_BY_ANNOTATION) or None
        try:
            reason = TransferReason(record.annotations.get(RELEASE_REASON_ANNOTATION, ""))
        except ValueError:
            reason = TransferReason.STOPPED if previous else TransferReason.NEW
        return Transfer(reason, previous, agent_id)
    if record.held_by(agent_id, incarnation):
        return Transfer(TransferReason.RESUMED, agent_id, agent_id)
    if record.holder == agent_id:
        return Transfer(TransferReason.RESTARTED, agent_id, agent_id)
    return Transfer(TransferReason.EXPIRED, record.holder, agent_id)
