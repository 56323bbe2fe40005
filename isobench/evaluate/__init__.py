"""Scoring agents' patches against the dataset (docs/evaluation.md): predictions read and matched (``inputs``,
``instances``), planned per (instance, model) (``plan``), applied strictly (``apply``), measured with base and head
in one interleaved job by the measure job's own code (``job``, ``check``), scored by every benchmark's rule
(``metrics``, ``rows``) and summed up per model (``aggregate``, ``report``). Imports the measurement core; the core
never imports this."""
