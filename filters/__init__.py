"""The filters of the pipeline's filter stage, and their runner.

- ``filters.base``: the interface (``RowFilter.check(record) -> Decision``,
  ``DatasetFilter.check_all(records)``), ``KEEP`` and ``drop(reason)``.
- one module per filter: ``decontam``, ``dedup``, ``length``, ``answer``,
  ``code_block``, ``paragraph``, ``repetition``, ``language``
  (``LanguageMixFilter`` and ``language_consistency``, the GRPO reward's measure).
- ``filters.config.FiltersConfig``: typed thresholds, YAML loadable.
- ``filters.runner.run_filters(rows, config) -> (rows with drop, stats)``.

Plain Python: nothing here imports Prefect; ``flows/`` wraps the runner.
"""
