"""A dispatcher that sends every message twice: proof that duplicates change nothing."""
from flows_app.dispatch import CeleryDispatcher


class DoublingDispatcher(CeleryDispatcher):
    def advance(self, execution_id, at=None):
        super().advance(execution_id, at)
        super().advance(execution_id, at)

    def task_run_ended(self, execution_id, record):
        super().task_run_ended(execution_id, record)
        super().advance(execution_id)  # and a duplicate advance message

    def run_task_runs(self, execution_id, batches):
        super().run_task_runs(execution_id, batches)
        super().run_task_runs(execution_id, batches)
