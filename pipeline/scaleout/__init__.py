"""Scale-out on Celery workers (docs/deploy.md): the executor chosen by configuration, the queues, the
worker command (`python -m pipeline.scaleout.workers`, `make workers`)."""
