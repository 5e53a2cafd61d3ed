"""Throughput benchmarks of the reference implementation against the plain baseline (``tox -e bench``)."""
