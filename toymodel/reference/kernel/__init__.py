"""The fused training step for small models: the C source (``_fused.c``), its build
(:mod:`~toymodel.reference.kernel.builder`) and the calls into it
(:mod:`~toymodel.reference.kernel.fused`). No torch here: the claims engine asks
:func:`~toymodel.reference.kernel.fused.build_info` for the build it records."""
