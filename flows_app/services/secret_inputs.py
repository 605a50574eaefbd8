"""SECRET inputs: stored as given, since the tasks read them, but never shown (the API and the admin show
`******`), and masked, with their disguises, in the logs and outputs of the execution's tasks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flows_app.engine.masking import MASK
from flows_app.models import Execution
from flows_app.spec.model import FlowSpec

from .flows import spec_of_revision


def secret_ids(flow: FlowSpec) -> frozenset[str]:
    return frozenset(spec.id for spec in flow.inputs if spec.type == "SECRET")


def secret_values(flow: FlowSpec, inputs: Mapping[str, Any]) -> list[str]:
    """The values given to the flow's SECRET inputs, to mask in its tasks' logs."""
    return [str(inputs[key]) for key in secret_ids(flow) if inputs.get(key) not in (None, "")]


def shown_inputs(execution: Execution) -> dict[str, Any]:
    """The execution's inputs as the API and the admin show them (its revision selected or annotated)."""
    inputs = dict(execution.inputs or {})
    if not inputs:
        return inputs
    checksum = getattr(execution, "revision_checksum", None) or execution.flow_revision.checksum
    for key in secret_ids(spec_of_revision(execution.flow_revision_id, checksum)) & inputs.keys():
        if inputs[key] not in (None, ""):
            inputs[key] = MASK
    return inputs
