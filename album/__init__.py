"""Photo albums: upload → metadata → thumbnail, labels and people → PostgreSQL, on Temporal.

The AWS image-recognition sample's state machine, rebuilt on real parts: the album service
(`api.py`) stores each upload in S3 and starts one workflow per photo (`workflow.py`); the worker
(`worker.py`) runs its activities (`activities.py`), which call the project's functions over HTTP
(`gateway.py`) and write results to S3 (`store.py`) and PostgreSQL (`db.py`). `local.py` starts the
whole system on this machine.
"""
