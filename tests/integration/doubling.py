"""A dispatcher that sends every message twice: proof that duplicates change nothing."""

from flows_app.dispatch import CeleryDispatcher


class DoublingDispatcher(CeleryDispatcher):
    def advance(self, execution_id, at=None):
        super().advance(execution_id, at)
        super().advance(execution_id, at)

    def send(self, ready):
        super().send(ready)
        super().send(ready)
        super().advance(ready.execution_id)  # and a duplicate advance message
