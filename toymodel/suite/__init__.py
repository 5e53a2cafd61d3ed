"""The claims suite: running claims against an implementation.

:mod:`~toymodel.suite.implementations` finds and runs implementations (the registry);
:mod:`~toymodel.suite.claim` is what a claim test talks to; :mod:`~toymodel.suite.plugin` (with
its session :mod:`~toymodel.suite.state` and :mod:`~toymodel.suite.terminal` output) is the
pytest plugin; :mod:`~toymodel.suite.cache` caches trained results by code fingerprint;
:mod:`~toymodel.suite.baselines` holds the reference's regression numbers,
:mod:`~toymodel.suite.calibration` the fast tier at many seeds, :mod:`~toymodel.suite.verdicts`
the decisions over seeds, :mod:`~toymodel.suite.shipped` where those data live;
:mod:`~toymodel.suite.prefetch` finds the specs a run's claims ask for and
:mod:`~toymodel.suite.executors` trains them first, in worker processes or on a Dask cluster;
:mod:`~toymodel.suite.progress` shows training; :mod:`~toymodel.suite.check` is
``toymodel-claims``; :mod:`~toymodel.suite.docs` generates the claims and mutants pages.
"""
