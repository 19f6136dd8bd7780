"""The conformance suite: one module per layer and profile, every test tied to a feature."""
