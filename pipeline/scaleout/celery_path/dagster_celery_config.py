"""Celery settings of a crypto4h worker, read by `dagster_celery.app` (its `make_app()` imports a top-level
module named `dagster_celery_config` when one is importable: dagster-celery's own configuration hook).

`python -m pipeline.scaleout.workers` puts this folder on the worker's PYTHONPATH. The broker URL is read
from the environment here, so it is never written to a file (`dagster-celery worker start -y` would
write it, password included, under $DAGSTER_HOME).
"""

from pipeline.scaleout.settings import worker_conf

globals().update(worker_conf())
