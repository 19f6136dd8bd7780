"""Placement: which Device a VIP goes to, on which address, and what a Device lets in.

``scheduler`` (pure) filters and ranks the inventory; ``addresses`` (pure) allocates from a
Device's addressPool; ``policy`` (pure) says which VIP and member addresses a Device allows;
``binder`` is the controller's loop that binds VIPs using all three and writes the outcome.
"""
