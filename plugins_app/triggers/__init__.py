"""Trigger plugins: where polling and realtime triggers read their events (a folder, a URL, a message bus),
one module per kind of source (see base.Source). Like task plugins they import nothing of flows_app but the
engine's vocabulary: the runner (flows_app/triggers/runner.py) hands them the rest in their context."""
