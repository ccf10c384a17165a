"""Where an HTTP/1.1 request ends, read from the bytes that have come so far.

The poller in shelter/core/worker.py buffers a request until it is whole before a thread sees
it; this says when that is. Only framing is read (the end of the head, Content-Length,
chunked): everything else is gunicorn's parser's job, which gets the same bytes after.
"""

from __future__ import annotations

HEAD_LIMIT = 64 * 1024
HEX = frozenset(b"0123456789abcdefABCDEF")

# What a scan of the buffer says.
WAIT = "wait"  # more to come
READY = "ready"  # a whole request (and maybe the start of the next)
ENDED = "ended"  # hand over what is here, the input ends there: gunicorn or the app refuses
HEAD_OVER = "head_over"  # a head larger than HEAD_LIMIT: 431
CHUNKS_OVER = "chunks_over"  # a chunked body larger than the limit: 413


class RequestScan:
    """How much of one HTTP/1.1 request a growing buffer holds.

    Whatever it cannot make sense of is ENDED: gunicorn's parser then refuses it with its
    own 400, or reads to the end of what was buffered and no further."""

    def __init__(self, body_limit: int) -> None:
        self.body_limit = body_limit
        self.searched = 0
        self.head_end: int | None = None
        self.body_end: int | None = None
        self.body_length: int | None = None  # Content-Length, once the head is in
        self.chunk_at: int | None = None  # where the next chunk-size line starts
        self.decoded = 0
        self.expects_continue = False

    def scan(self, buf: bytes | bytearray) -> str:
        if self.head_end is None:
            verdict = self._head(buf)
            if verdict is not None:
                return verdict
        if self.chunk_at is not None:
            return self._chunks(buf)
        assert self.body_end is not None
        return READY if len(buf) >= self.body_end else WAIT

    def _head(self, buf: bytes | bytearray) -> str | None:
        start = 0
        while buf.startswith(b"\r\n", start) and start < 64:  # empty lines before it (9112 2.2)
            start += 2
        end = buf.find(b"\r\n\r\n", max(start, self.searched - 3))
        if end < 0:
            self.searched = len(buf)
            return HEAD_OVER if len(buf) > HEAD_LIMIT else WAIT
        if end + 4 > HEAD_LIMIT:
            return HEAD_OVER
        self.head_end = end + 4
        lines = bytes(buf[start:end]).split(b"\r\n")
        lengths: list[bytes] = []
        codings: list[bytes] = []
        expect = b""
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                return ENDED
            name, value = name.lower(), value.strip()
            if name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                codings += [coding.strip().lower() for coding in value.split(b",")]
            elif name == b"expect":
                expect = value.lower()
        self.expects_continue = expect == b"100-continue" and lines[0].endswith(b" HTTP/1.1")
        if codings:
            if lengths or codings[-1] != b"chunked":
                return ENDED
            self.chunk_at = self.head_end
            return None
        if not lengths:
            self.body_end = self.head_end
            return None
        if len(lengths) > 1 or not lengths[0].isdigit() or len(lengths[0]) > 15:
            return ENDED
        self.body_length = int(lengths[0])
        if self.body_length > self.body_limit:
            return ENDED
        self.body_end = self.head_end + self.body_length
        return None

    def _chunks(self, buf: bytes | bytearray) -> str:
        while True:
            assert self.chunk_at is not None
            line_end = buf.find(b"\r\n", self.chunk_at)
            if line_end < 0:
                return ENDED if len(buf) - self.chunk_at > 1024 else WAIT
            size = bytes(buf[self.chunk_at:line_end]).split(b";", 1)[0].strip()
            if not size or len(size) > 15 or not HEX.issuperset(size):
                return ENDED
            length = int(size, 16)
            if length == 0:  # the last chunk; then trailer fields and an empty line
                end = buf.find(b"\r\n\r\n", line_end)
                if end < 0:
                    return ENDED if len(buf) - line_end > HEAD_LIMIT else WAIT
                self.body_end = end + 4
                return READY
            if self.decoded + length > self.body_limit:
                return CHUNKS_OVER
            following = line_end + 2 + length + 2
            if len(buf) < following:
                return WAIT
            self.decoded += length
            self.chunk_at = following
