"""The VIP trees an agent serves: one loop per VIP, one reconcile per turn of it.

``tree`` (pure) assembles a VIP's tree from the index views; ``loop`` runs each VIP's loop
(trigger, coalescing, retry with backoff, resync timer); ``reconcile`` is one turn of it
(build → check the device → apply or verify through the device worker → report);
``report`` turns an outcome into the status of every object of the tree.
"""
