"""The paper's claims as tests: one module per section (installed as ``toymodel.claims``)."""
