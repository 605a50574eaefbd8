"""Uploaded files have a size: each is counted as it arrives and the request refused past
TERN_UPLOAD_MAX_BYTES, before the rest is read. Django's own handlers then keep small files in memory and
write bigger ones to a temporary file, which is copied to internal storage in chunks."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import FileUploadHandler


class UploadTooLarge(RequestDataTooBig):
    """A file past TERN_UPLOAD_MAX_BYTES: the API answers 413 with the message, the rest of Django a 400."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


class BoundedUploadHandler(FileUploadHandler):
    """First of the upload handlers: counts each file's bytes and passes them on."""

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        limit = settings.TERN["UPLOAD_MAX_BYTES"]
        if self.received > limit:
            field = f"inputs.{str(self.field_name)[:40]}"
            raise UploadTooLarge(field, f"{field}: the file is more than {limit:,} bytes (TERN_UPLOAD_MAX_BYTES)")
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler makes the file
