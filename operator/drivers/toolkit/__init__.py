"""Parts most drivers need, so that each driver does not write its own (see ``docs/drivers.md``).

- :mod:`.files`: atomic file writes, batches synced once.
- :mod:`.fence`: a device state dir locked per call, with the owner's fence checked.
- :mod:`.process`: start a data-plane process in its own session; find, check and stop it.
- :mod:`.deathwatch`: a thread that notices the instant a process exits (``Driver.watch``).
- :mod:`.pace`: how many trees of a batch fit before the call's deadline (``apply_many``).
- :mod:`.listen`: can an address:port be bound here (before a data plane is told to listen).
"""
