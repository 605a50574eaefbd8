"""Admin forms: running a flow (one field per declared input, and the execution's extra labels), and a KV entry."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.widgets import AdminRadioSelect
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.utils import timezone

from .engine.inputs import InputsError
from .models import KVEntry
from .services import kv
from .spec.durations import DurationError, parse_duration
from .spec.inputs import InputSpec
from .spec.model import FlowSpec

# What a value looks like, for types typed as text; the service parses and checks them.
PLACEHOLDERS = {
    "URI": "https://example.com/file",
    "EMAIL": "name@example.com",
    "DATETIME": "2024-01-31T12:00:00Z",
    "DATE": "2024-01-31",
    "TIME": "12:00:00",
    "DURATION": "PT15M",
    "JSON": '{"key": "value"}',
    "YAML": "key: value",
    "ARRAY": '["a", "b"]',
    "MULTISELECT": '["a", "b"]',
}
_MULTILINE = frozenset({"JSON", "YAML"})
_BOOLEAN_CHOICES = [("true", "true"), ("false", "false")]
_BLANK_CHOICE = [("", "---------")]
# An error line of InputsError after its `inputs.<id>`: an optional item index, then the message.
_ERROR_REST = re.compile(r"(?:\[(\d+)\])?: (.*)", re.DOTALL)


def needs_value(spec: InputSpec) -> bool:
    """Whether the user must fill the field in: a blank field falls back to the input's default."""
    return spec.required and spec.defaults is None


def is_template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


class InputsForm(forms.Form):
    """Base of the forms `inputs_form` builds; it only shapes values, the service types and checks them."""

    specs: tuple[InputSpec, ...] = ()
    required_css_class = "required"  # the admin's style for the labels of required fields

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.saved_uploads: list[Path] = []

    def inputs(self) -> dict[str, Any]:
        """The values to give `start_execution`: text, a list for MULTISELECT, a path for an upload;
        blank fields are left out so the service applies the defaults."""
        values: dict[str, Any] = {}
        for spec in self.specs:
            cleaned = self.cleaned_data.get(spec.id)
            if isinstance(cleaned, UploadedFile):
                path = save_upload(cleaned)
                self.saved_uploads.append(path)
                values[spec.id] = str(path)
            elif (value := value_to_send(spec, cleaned)) is not None:
                values[spec.id] = value
        return values

    def show_errors(self, error: InputsError) -> None:
        """Put each line of the service's error next to the input it names, the others above the form."""
        for line in error.errors:
            field, message = self.error_place(line)
            self.add_error(field, message)

    def error_place(self, line: str) -> tuple[str | None, str]:
        for spec in self.specs:
            head = f"inputs.{spec.id}"
            match = _ERROR_REST.fullmatch(line[len(head) :]) if line.startswith(head) else None
            if match:
                index, message = match.groups()
                return spec.id, message if index is None else f"item {index}: {message}"
        return None, line

    def discard_uploads(self) -> None:
        """Remove the files saved for an execution that was not started."""
        for path in self.saved_uploads:
            shutil.rmtree(path.parent, ignore_errors=True)
        self.saved_uploads.clear()


def inputs_form(spec: FlowSpec) -> type[InputsForm]:
    """A form class with one field per input of the flow, named by the input's id."""
    fields = {input_spec.id: field_for(input_spec) for input_spec in spec.inputs}
    return type("FlowInputsForm", (InputsForm,), {**fields, "specs": tuple(spec.inputs)})


def field_for(spec: InputSpec) -> forms.Field:
    build = _BUILDERS.get(spec.type, _text_field)
    field = build(spec, label=spec.display_name or spec.id, help_text=_help_of(spec), required=needs_value(spec))
    field.initial = initial_of(spec)
    return field


def _help_of(spec: InputSpec) -> str:
    help_text = spec.description or ""
    if is_template(spec.defaults):  # rendered when the flow runs, so not a value to put in the field
        help_text += f" (empty: the default, {spec.defaults})"
    elif spec.type == "SECRET" and spec.defaults is not None:
        help_text += " (empty: the default, not shown)"
    return help_text.strip()


def initial_of(spec: InputSpec) -> Any:
    """The default as the field shows it: text, or a list of choices for MULTISELECT."""
    default = spec.defaults
    if default is None or is_template(default) or spec.type in ("SECRET", "FILE"):
        return None  # a secret is not echoed in the page; a file field cannot be pre-filled
    if spec.type == "MULTISELECT" and isinstance(default, list) and spec.values is not None:
        return [as_text(item) for item in default]
    if spec.type == "YAML" and not isinstance(default, str):
        return json.dumps(default, indent=2, default=str)  # JSON is YAML, and keeps lists on one line
    return as_text(default)


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (date, time)):  # YAML reads an unquoted date or date-time as an object
        return value.isoformat()
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def value_to_send(spec: InputSpec, cleaned: Any) -> str | list[str] | None:
    """A cleaned field value as the service expects it from a web form; None when there is no value."""
    if cleaned is None or cleaned == []:
        return None
    if cleaned == "" and spec.type != "STRING":
        return None  # a blank SECRET keeps the default the page does not show; "" is no value for the others
    if isinstance(cleaned, list):
        return [str(item) for item in cleaned]
    return str(cleaned)


def save_upload(upload: UploadedFile) -> Path:
    """Write an upload to a new directory under DATA_DIR/uploads, keeping its name (the service checks
    its extension), and return the file's path."""
    root = Path(settings.TERN["DATA_DIR"]) / "uploads"
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=root)) / Path(upload.name or "upload").name
    with path.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return path


# --- one builder per kind of field -----------------------------------------------------------------


def _text_field(spec: InputSpec, **common: Any) -> forms.Field:
    attrs = {"class": "vLargeTextField" if spec.type in _MULTILINE else "vTextField"}
    if spec.type in PLACEHOLDERS:
        attrs["placeholder"] = PLACEHOLDERS[spec.type]
    widget = forms.Textarea(attrs={**attrs, "rows": 4}) if spec.type in _MULTILINE else forms.TextInput(attrs)
    # Spaces may matter in a STRING; for other types the service strips what it parses.
    return forms.CharField(widget=widget, strip=spec.type != "STRING", **common)


def _secret_field(spec: InputSpec, **common: Any) -> forms.Field:
    return forms.CharField(widget=forms.PasswordInput(attrs={"class": "vTextField"}), strip=False, **common)


def _int_field(spec: InputSpec, **common: Any) -> forms.Field:
    return forms.IntegerField(**common)


def _float_field(spec: InputSpec, **common: Any) -> forms.Field:
    return forms.FloatField(**common)


def _boolean_field(spec: InputSpec, **common: Any) -> forms.Field:
    # Radio buttons, not a checkbox: an unticked box would read as "no value" and fail a required input.
    choices = _BOOLEAN_CHOICES + ([("", "no value")] if _may_be_null(spec) else [])
    return forms.ChoiceField(choices=choices, widget=AdminRadioSelect(attrs={"class": "radiolist inline"}), **common)


def _choice_field(spec: InputSpec, **common: Any) -> forms.Field:
    if spec.values is None or spec.allow_custom_value:  # any text may do, so the service checks it
        return _text_field(spec, **common)
    blank = _BLANK_CHOICE if spec.defaults is None else []
    return forms.ChoiceField(choices=blank + [(v, v) for v in spec.values], **common)


def _multiple_choice_field(spec: InputSpec, **common: Any) -> forms.Field:
    if spec.values is None or spec.allow_custom_value:
        return _text_field(spec, **common)
    return forms.MultipleChoiceField(
        choices=[(v, v) for v in spec.values], widget=forms.CheckboxSelectMultiple, **common
    )


def _file_field(spec: InputSpec, **common: Any) -> forms.Field:
    accepted = spec.extra.get("acceptedExtensions")
    attrs = {"accept": ",".join(accepted)} if accepted else {}
    return forms.FileField(widget=forms.FileInput(attrs), **common)


def _may_be_null(spec: InputSpec) -> bool:
    return not spec.required and spec.defaults is None


_BUILDERS: dict[str, Callable[..., forms.Field]] = {
    "SECRET": _secret_field,
    "INT": _int_field,
    "FLOAT": _float_field,
    "BOOLEAN": _boolean_field,
    "BOOL": _boolean_field,
    "ENUM": _choice_field,
    "SELECT": _choice_field,
    "MULTISELECT": _multiple_choice_field,
    "FILE": _file_field,
}


# --- labels -------------------------------------------------------------------------------------


class LabelsForm(forms.Form):
    labels = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "vLargeTextField", "placeholder": "team=data"}),
        help_text="Optional: one key=value per line, added to the flow's labels.",
    )

    def clean_labels(self) -> dict[str, str]:
        return parse_labels(self.cleaned_data["labels"])


def parse_labels(text: str) -> dict[str, str]:
    """`key=value` lines as a dict; blank lines are skipped; every bad line is reported at once."""
    labels: dict[str, str] = {}
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = (part.strip() for part in line.partition("="))
        if not sep or not key:
            problems.append(f"line {number}: {line.strip()!r} is not key=value")
        elif key.startswith("system."):  # as for a flow's labels: Tern sets those itself
            problems.append(f"line {number}: the `system.` prefix is reserved")
        elif key in labels:
            problems.append(f"line {number}: label '{key}' is given twice")
        else:
            labels[key] = value
    if problems:
        raise ValidationError(problems)
    return labels


# --- KV entries -----------------------------------------------------------------------------------


class JSONValueField(forms.JSONField):
    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else super().prepare_value(value)  # a new entry starts empty, not "null"


class KVEntryForm(forms.ModelForm):
    """An entry as the KV service checks it: a namespace and key it accepts, a JSON value, an expiry."""

    value = JSONValueField(
        widget=forms.Textarea(attrs={"rows": 4, "class": "vLargeTextField"}),
        help_text='A JSON value: "text" (in quotes), 42, true, [1, 2], {"a": 1}.',
    )
    ttl = forms.CharField(
        required=False, label="TTL", help_text="Or a time to live from now, e.g. PT1H or P30D: it replaces the expiry."
    )

    class Meta:
        model = KVEntry
        fields = ("namespace", "key", "value", "expires_at")

    def clean_namespace(self) -> str:
        return _checked(kv.check_namespace, self.cleaned_data["namespace"])

    def clean_key(self) -> str:
        return _checked(kv.check_key, self.cleaned_data["key"])

    def clean_value(self) -> Any:
        return _checked(kv.check_value, self.cleaned_data["value"])

    def clean_ttl(self) -> timedelta | None:
        text = self.cleaned_data["ttl"]
        try:
            return parse_duration(text) if text else None
        except DurationError as exc:
            raise ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("ttl") is not None:
            cleaned["expires_at"] = timezone.now() + cleaned["ttl"]
        return cleaned


def _checked(check: Callable[[Any], Any], value: Any) -> Any:
    try:
        return check(value)
    except kv.BadEntry as exc:
        raise ValidationError(str(exc)) from None
