"""The request body cap (MAX_REQUEST_BYTES), whatever way the body is framed.

Flask refuses a Content-Length over the cap with 413 before reading anything. A chunked body has no
length: Werkzeug then reads up to the cap and stops, silently, so an oversized chunked registration
was cut and accepted. Here a body without a length is read to at most cap + 1 bytes, once, and
refused with 413 when that extra byte arrives; nothing past it is ever read.
"""

from __future__ import annotations

import io
from typing import IO

from flask import Request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import get_input_stream

READ_SIZE = 64 * 1024


def read_at_most(stream: IO[bytes], limit: int) -> bytes:
    """Up to `limit` bytes of `stream` (fewer when it ends first)."""
    parts: list[bytes] = []
    total = 0
    while total < limit:
        try:
            chunk = stream.read(min(READ_SIZE, limit - total))
        except (OSError, ValueError) as error:  # the client went away mid-body
            raise ClientDisconnected() from error
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)


class CappedRequest(Request):
    """Flask's request, with the body cap enforced on bodies that carry no Content-Length."""

    @cached_property
    def stream(self) -> IO[bytes]:
        cap = self.max_content_length
        # A WSGI server sets wsgi.input_terminated when it ends a chunked body itself (gunicorn,
        # Werkzeug's server); without it Werkzeug reads no body at all, which is safe as it is.
        unframed = self.content_length is None and "wsgi.input_terminated" in self.environ
        if self.shallow:
            raise RuntimeError("a shallow request never reads its body")
        if cap is None or not unframed:
            return get_input_stream(self.environ, max_content_length=cap)
        body = read_at_most(self.environ["wsgi.input"], cap + 1)
        if len(body) > cap:
            raise RequestEntityTooLarge()
        return io.BytesIO(body)
