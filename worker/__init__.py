"""The unlearn worker: Celery tasks, the unlearning core and the toy-shapes world."""
