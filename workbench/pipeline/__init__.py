"""The pipeline worker: a streamz graph from a source through features and rules to storage.

:mod:`~workbench.pipeline.graph` wires the nodes (the only module that knows streamz),
:mod:`~workbench.pipeline.writer` commits batches with retries, :mod:`~workbench.pipeline.worker`
assembles a worker from settings, :mod:`~workbench.pipeline.database` picks the database
(configured or embedded).
"""
