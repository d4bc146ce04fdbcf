#!/usr/bin/env python3
"""chfront: a small ClickHouse-HTTP-compatible server over the real ClickHouse engine (chdb-core).

Why: the project needs a real ClickHouse for local runs and end-to-end tests, on a machine without
Docker or a ClickHouse server package. PyPI's `chdb-core` embeds the ClickHouse engine in-process;
this front speaks the subset of the ClickHouse HTTP interface that the Rust `clickhouse` crate (and
curl) use, and runs every statement on one chdb connection whose data lives in `--data` (so tables
persist across restarts of the front).

What it implements (see infra/local/README.md for the list of quirks):
  * `GET /ping`, `GET /` (no query) -> `Ok.`
  * the query in the POST body and/or the `query` URL parameter (ClickHouse concatenates them with a
    newline); `database`, `default_format`, `param_NAME` (server-side parameters `{name:Type}`) and
    any other URL parameter as a ClickHouse setting (applied with SET for this request only);
  * `INSERT ... FORMAT F` followed by data (after the query in the body, or the whole body when the
    query is in the URL): the data is written to a temporary file and executed as
    `INSERT ... FROM INFILE 'file' COMPRESSION '...' FORMAT F`;
  * chunked and Content-Length request bodies; `Content-Encoding: gzip|deflate` always, and
    br/xz/zstd/lz4 for INSERT data (handed to the engine's own decompression);
  * results are the engine's bytes in the requested format (FORMAT clause, else `default_format`,
    else TabSeparated), with `X-ClickHouse-Format`, `X-ClickHouse-Summary`, `X-ClickHouse-Query-Id`;
  * errors -> HTTP 500 (401 for authentication) with `X-ClickHouse-Exception-Code: N` and the body
    `Code: N. DB::Exception: ... (version V (chdb-core))`, as ClickHouse does.

Not implemented: ClickHouse's own block compression (`compress=1` / `decompress=1`, the crate's
`Compression::Lz4`) -> a clear error asks for `Compression::None`; sessions (`session_id` is
ignored; a SET sent as a query does persist, since there is only one engine session); progress
headers; query cancellation on disconnect.

The engine is used from one connection under one lock: statements run one at a time (chdb's
connection is not meant to be used concurrently), while HTTP parsing and body upload happen in
parallel threads.

Options: --host, --port (0 = a free port), --data DIR, --parent-pid PID (exit when it is gone),
--remove-on-orphan DIR (delete DIR when exiting because the parent is gone),
--user/--password (if given, requests must match), --create-database NAME (repeatable).
Prints exactly one line `listening on HOST:PORT` on stdout once ready; logs go to stderr.
"""

import argparse
import base64
import gzip
import http.server
import json
import os
import re
import signal
import socketserver
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
import zlib

# URL parameters that are part of the HTTP interface rather than settings (ClickHouse's
# HTTPHandler reserves the same names); they are never passed to SET.
RESERVED_PARAMS = {
    "query", "database", "default_format", "user", "password", "quota_key", "query_id",
    "stacktrace", "role", "buffer_size", "wait_end_of_query", "session_id", "session_timeout",
    "session_check", "client_protocol_version", "close_session", "compress", "decompress",
}

TEXT_ENCODINGS = {"", "identity"}
# Content-Encoding -> the engine's COMPRESSION name for INSERT ... FROM INFILE.
INFILE_COMPRESSION = {
    "gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate", "br": "br", "xz": "xz",
    "zstd": "zstd", "lz4": "lz4", "bz2": "bz2", "snappy": "snappy",
}

MAX_QUERY_BYTES = 256 * 1024 * 1024  # in-memory bodies (queries, INSERTs with the query in the body)


class ClientGone(Exception):
    """The client closed the connection before sending the whole request body."""


class HttpError(Exception):
    """An error to answer with: ClickHouse code, HTTP status, message."""

    def __init__(self, code, message, status=500, name=None):
        super().__init__(message)
        self.code = code
        self.status = status
        self.name = name
        self.message = message


def log(msg):
    sys.stderr.write("%s chfront: %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), msg))
    sys.stderr.flush()


# ---------------------------------------------------------------------------------------------
# A tiny SQL scanner: enough to find top-level keywords (FORMAT, SETTINGS, VALUES, ...) while
# skipping string literals, quoted identifiers and comments.


def scan(text, start=0, stop_at=None):
    """Yield (kind, value, start, end) tokens of `text`; kind: word|str|ident|num|punct.

    `stop_at(tokens_so_far_last)` is not used; callers stop iterating when they have what they
    need, so binary data after `FORMAT name` is never scanned.
    """
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n\f\v":
            i += 1
            continue
        if c == "-" and text.startswith("--", i) or c == "#" and text.startswith("#!", i):
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if c == "/" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        if c in "'\"`":
            j = i + 1
            while j < n:
                d = text[j]
                if d == "\\":
                    j += 2
                    continue
                if d == c:
                    if j + 1 < n and text[j + 1] == c:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            end = min(j + 1, n)
            yield ("str" if c == "'" else "ident", text[i:end], i, end)
            i = end
            continue
        if c.isalpha() or c == "_":
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            yield ("word", text[i:j], i, j)
            i = j
            continue
        if c.isdigit():
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] in "._"):
                j += 1
            yield ("num", text[i:j], i, j)
            i = j
            continue
        yield ("punct", c, i, i + 1)
        i += 1


def unquote_ident(tok_value):
    if tok_value[:1] in "`\"" and len(tok_value) >= 2:
        return tok_value[1:-1]
    return tok_value


class Parsed:
    """What the front needs to know about one statement."""

    def __init__(self):
        self.kind = None  # first keyword, upper-case (SELECT, INSERT, USE, SET, ...)
        self.format = None  # explicit top-level FORMAT name
        # For INSERT ... FORMAT F <data>:
        self.insert_head = None  # text before FORMAT (or before SETTINGS)
        self.insert_settings = None  # "SETTINGS ..." text between the head and FORMAT, or ""
        self.data_offset = None  # offset in the scanned text where the data begins


def parse_statement(text):
    """Classify a statement; for INSERT, find `FORMAT name` and where the data starts.

    `text` is decoded as latin-1 so that offsets are byte offsets of the original body.
    """
    p = Parsed()
    depth = 0
    settings_pos = None
    expect_format_name = False
    format_pos = None
    for kind, value, start, end in scan(text):
        if p.kind is None:
            if kind == "punct" and value == "(":
                depth += 1
                continue
            if kind != "word":
                p.kind = value.upper()
                continue
            p.kind = value.upper()
            continue
        if expect_format_name:
            p.format = unquote_ident(value)
            expect_format_name = False
            if p.kind == "INSERT":
                # Data starts after the format name: skip blanks, then at most one newline.
                j = end
                while j < len(text) and text[j] in " \t":
                    j += 1
                if text.startswith("\r\n", j):
                    j += 2
                elif j < len(text) and text[j] == "\n":
                    j += 1
                p.data_offset = j
                if settings_pos is not None:
                    p.insert_head = text[:settings_pos]
                    p.insert_settings = text[settings_pos:format_pos]
                else:
                    p.insert_head = text[:format_pos]
                    p.insert_settings = ""
                return p
            continue
        if kind == "punct":
            if value == "(":
                depth += 1
            elif value == ")":
                depth = max(0, depth - 1)
            continue
        if kind != "word" or depth != 0:
            continue
        word = value.upper()
        if p.kind == "INSERT":
            if word in ("VALUES", "SELECT", "WITH", "INFILE"):
                return p  # the statement carries its own data: run it as it is
            if word == "SETTINGS" and settings_pos is None:
                settings_pos = start
            elif word == "FORMAT":
                format_pos = start
                expect_format_name = True
        elif word == "FORMAT":
            expect_format_name = True
    return p


# ---------------------------------------------------------------------------------------------
# The engine.


class Engine:
    def __init__(self, data_dir):
        from chdb import _chdb  # imported here so --help works without chdb

        self._chdb = _chdb
        os.makedirs(data_dir, exist_ok=True)
        self.data_dir = os.path.abspath(data_dir)
        self.tmp_dir = os.path.join(self.data_dir, ".chfront-tmp")
        os.makedirs(self.tmp_dir, exist_ok=True)
        for name in os.listdir(self.tmp_dir):  # leftovers of a killed front
            try:
                os.unlink(os.path.join(self.tmp_dir, name))
            except OSError:
                pass
        self.lock = threading.Lock()
        self.conn = _chdb.connect(self.data_dir)
        self.current_db = None
        self.closed = False
        res = self.conn.query("SELECT version()", "TabSeparated")
        self.version = res.bytes().decode().strip()

    def close(self):
        with self.lock:
            if not self.closed:
                self.closed = True
                try:
                    self.conn.close()
                except Exception as e:  # noqa: BLE001 - best effort at shutdown
                    log("close: %s" % e)

    def _run(self, sql, fmt="TabSeparated", params=None):
        try:
            return self.conn.query(sql, fmt, params=params or {})
        except RuntimeError as e:
            raise engine_error(str(e)) from None

    def execute(self, sql, fmt, database, settings, params):
        """Run one statement with per-request database and settings; returns the result object."""
        with self.lock:
            if self.closed:
                raise HttpError(210, "the server is shutting down", status=503)
            want_db = database or "default"
            if self.current_db != want_db:
                self._run("USE %s" % quote_ident(want_db))
                self.current_db = want_db
            applied = []
            try:
                if settings:
                    self._run("SET " + ", ".join("%s = %s" % (quote_ident(k), quote_str(v))
                                                 for k, v in settings))
                    applied = [k for k, _ in settings]
                res = self._run(sql, fmt, params)
            finally:
                if applied:
                    try:
                        self._run("SET " + ", ".join("%s = DEFAULT" % quote_ident(k) for k in applied))
                    except HttpError as e:
                        log("could not reset settings %s: %s" % (applied, e.message))
                if re.match(r"\s*USE\b", sql, re.I):
                    self.current_db = None
            return res


def quote_ident(name):
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_str(value):
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def engine_error(text):
    text = text.strip()
    m = re.search(r"Code:\s*(\d+)", text)
    code = int(m.group(1)) if m else 1001
    m = re.search(r"DB::Exception:\s*(.*)", text, re.S)
    message = m.group(1) if m else text
    return HttpError(code, message)


# ---------------------------------------------------------------------------------------------
# HTTP.

FORMAT_CONTENT_TYPES = [
    (re.compile(r"^(TabSeparated|TSV)", re.I), "text/tab-separated-values; charset=UTF-8"),
    (re.compile(r"^CSV", re.I), "text/csv; charset=UTF-8; header=absent"),
    (re.compile(r"^(JSONEachRow|JSONLines|NDJSON|JSONStringsEachRow|JSONCompactEachRow)", re.I),
     "application/x-ndjson; charset=UTF-8"),
    (re.compile(r"^JSON", re.I), "application/json; charset=UTF-8"),
    (re.compile(r"^(Pretty|Vertical|Markdown|Values|LineAsString|Raw)", re.I),
     "text/plain; charset=UTF-8"),
    (re.compile(r"^XML", re.I), "application/xml; charset=UTF-8"),
]


def content_type_for(fmt):
    for rx, ct in FORMAT_CONTENT_TYPES:
        if rx.match(fmt):
            return ct
    return "application/octet-stream"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chfront"
    # TCP_NODELAY, as ClickHouse sets it: a response goes out as two writes (head, then body),
    # and with Nagle's algorithm the body waited for the client's delayed ACK of the head,
    # 40 ms per statement.
    disable_nagle_algorithm = True

    def version_string(self):
        return "chfront"

    # set on the class by main()
    engine = None
    auth = None  # (user, password) or None

    def log_message(self, fmt, *args):  # quiet default access log; we log ourselves
        pass

    # -- body reading ----------------------------------------------------------------------

    def _body_chunks(self):
        """Yield the raw request body (de-chunked, not decoded)."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ClientGone("unexpected end of chunked request body")
                size_s = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_s, 16)
                except ValueError:
                    raise HttpError(33, "bad chunk size %r" % size_s, status=400) from None
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    return
                left = size
                while left:
                    buf = self.rfile.read(min(left, 1 << 20))
                    if not buf:
                        raise ClientGone("unexpected end of chunked request body")
                    left -= len(buf)
                    yield buf
                self.rfile.readline(3)  # CRLF after the chunk
        else:
            length = int(self.headers.get("Content-Length") or 0)
            left = length
            while left > 0:
                buf = self.rfile.read(min(left, 1 << 20))
                if not buf:
                    raise ClientGone("unexpected end of request body")
                left -= len(buf)
                yield buf

    def _read_body(self, decode):
        out = bytearray()
        for chunk in self._body_chunks():
            out += chunk
            if len(out) > MAX_QUERY_BYTES:
                raise HttpError(241, "request body too large for chfront", status=413)
        self._body_consumed = True
        body = bytes(out)
        if decode:
            body = self._decode(body)
        return body

    def _content_encoding(self):
        return (self.headers.get("Content-Encoding") or "").strip().lower()

    def _decode(self, body):
        enc = self._content_encoding()
        if enc in TEXT_ENCODINGS or not body:
            return body
        try:
            if enc in ("gzip", "x-gzip"):
                return gzip.decompress(body)
            if enc == "deflate":
                try:
                    return zlib.decompress(body)
                except zlib.error:
                    return zlib.decompress(body, -zlib.MAX_WBITS)
        except (OSError, zlib.error, EOFError) as e:
            raise HttpError(354, "cannot decompress request body (%s): %s" % (enc, e), status=400) from None
        raise HttpError(48, "Content-Encoding %r is supported by chfront only for INSERT data "
                            "sent with the query in the URL" % enc, status=400)

    # -- responses -------------------------------------------------------------------------

    def _send(self, status, body, headers):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        else:
            self.send_header("Connection", "Keep-Alive")
            self.send_header("Keep-Alive", "timeout=30")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_error(self, err, query_id):
        version = self.engine.version if self.engine else "?"
        name = ""
        if err.name:
            name = " (%s)" % err.name
        msg = "Code: %d. DB::Exception: %s%s (version %s (chdb-core))\n" % (
            err.code, err.message.rstrip(), name, version)
        self._send(err.status, msg.encode("utf-8", "replace"), [
            ("Content-Type", "text/plain; charset=UTF-8"),
            ("X-ClickHouse-Exception-Code", str(err.code)),
            ("X-ClickHouse-Query-Id", query_id),
            ("X-ClickHouse-Server-Display-Name", "chfront"),
        ])

    # -- dispatch --------------------------------------------------------------------------

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self._handle(allow_body=False)

    def do_POST(self):
        self._handle(allow_body=True)

    def _check_auth(self, qs):
        if not self.auth:
            return
        user = self.headers.get("X-ClickHouse-User") or qs.get("user")
        password = self.headers.get("X-ClickHouse-Key")
        if password is None:
            password = qs.get("password")
        authz = self.headers.get("Authorization") or ""
        if authz.lower().startswith("basic "):
            try:
                u, _, pw = base64.b64decode(authz[6:].strip()).decode().partition(":")
                user, password = u, pw
            except ValueError:
                pass
        user = user or "default"
        password = password or ""
        if (user, password) != self.auth:
            raise HttpError(516, "%s: Authentication failed: password is incorrect, or there is no "
                                 "user with such name." % user, status=401, name="AUTHENTICATION_FAILED")

    def _handle(self, allow_body):
        started = time.monotonic()
        url = urllib.parse.urlsplit(self.path)
        pairs = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
        qs = {}
        for k, v in pairs:
            qs[k] = v
        query_id = qs.get("query_id") or str(uuid.uuid4())
        path = url.path.rstrip("/") or "/"
        if path in ("/ping", "/replicas_status"):
            self._drain_quietly()
            self._send(200, b"Ok.\n", [("Content-Type", "text/html; charset=UTF-8")])
            return
        if path != "/":
            self.close_connection = True
            self._send_error(HttpError(0, "There is no handle %s" % url.path, status=404), query_id)
            return
        has_body = allow_body and (
            "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
            or int(self.headers.get("Content-Length") or 0) > 0)
        if not has_body and "query" not in qs:
            self._send(200, b"Ok.\n", [("Content-Type", "text/html; charset=UTF-8")])
            return
        self._body_consumed = not has_body
        tmp_path = None
        desc = "?"
        status = 200
        try:
            try:
                self._check_auth(qs)
            except HttpError:
                self.close_connection = True  # body left unread
                raise
            if qs.get("compress") == "1" or qs.get("decompress") == "1":
                self.close_connection = True
                raise HttpError(1, "chfront does not implement ClickHouse block compression "
                                   "(compress=1/decompress=1): configure the client with "
                                   "Compression::None", status=400, name="UNSUPPORTED_METHOD")
            database = qs.get("database") or None
            default_format = qs.get("default_format") or "TabSeparated"
            params = {k[6:]: v for k, v in pairs if k.startswith("param_")}
            settings = [(k, v) for k, v in pairs
                        if k not in RESERVED_PARAMS and not k.startswith("param_")]
            url_query = qs.get("query")

            data_text = None  # bytes of INSERT data kept in memory
            if url_query is not None and has_body:
                head = parse_statement(url_query)
                if (head.kind == "INSERT" and head.data_offset is not None
                        and url_query[head.data_offset:].strip() == ""):
                    # Stream the body straight into a file for INSERT ... FROM INFILE.
                    parsed = head
                    sql_text = url_query
                    tmp_path = self._spool_body()
                    compression = self._infile_compression()
                else:
                    body = self._read_body(decode=True)
                    full = url_query.encode("utf-8") + b"\n" + body
                    parsed, sql_text, data_text = self._split(full)
                    compression = "none"
            elif url_query is not None:
                parsed, sql_text, data_text = self._split(url_query.encode("utf-8"))
                compression = "none"
            else:
                body = self._read_body(decode=True)
                parsed, sql_text, data_text = self._split(body)
                compression = "none"
            if not sql_text.strip():
                raise HttpError(62, "Empty query", name="SYNTAX_ERROR")
            desc = " ".join(sql_text.split())[:160]

            if parsed.kind == "INSERT" and parsed.data_offset is not None:
                if tmp_path is None:
                    tmp_path = self._temp_file()
                    with open(tmp_path, "wb") as f:
                        f.write(data_text or b"")
                    compression = "none"
                sql = "%s FROM INFILE %s COMPRESSION %s %s FORMAT %s" % (
                    parsed.insert_head.rstrip(), quote_str(tmp_path), quote_str(compression),
                    parsed.insert_settings.strip(), parsed.format)
                fmt = default_format
                out_format = None
            else:
                sql = sql_text
                out_format = parsed.format or default_format
                fmt = default_format

            res = self.engine.execute(sql, fmt, database, settings, params)
            payload = res.bytes() if res is not None else b""
            summary = self._summary(res, payload, started)
            headers = [("X-ClickHouse-Query-Id", query_id),
                       ("X-ClickHouse-Server-Display-Name", "chfront"),
                       ("X-ClickHouse-Timezone", "UTC"),
                       ("X-ClickHouse-Summary", summary)]
            if out_format:
                headers.append(("Content-Type", content_type_for(out_format)))
                headers.append(("X-ClickHouse-Format", out_format))
            else:
                headers.append(("Content-Type", "text/plain; charset=UTF-8"))
            if database:
                headers.append(("X-ClickHouse-Database", database))
            self._send(200, payload, headers)
        except HttpError as e:
            status = e.status
            if not self._body_consumed:
                self.close_connection = True  # the rest of the body is still on the wire
            desc += " -> Code %d: %s" % (e.code, e.message[:200].replace("\n", " "))
            try:
                self._send_error(e, query_id)
            except OSError:
                self.close_connection = True
                desc += " (client went away)"
        except (ClientGone, OSError) as e:
            # Nothing was executed for a truncated body (an aborted INSERT inserts nothing).
            self.close_connection = True
            status = 0
            desc += " -> client went away: %s" % e
        except Exception as e:  # noqa: BLE001 - answer instead of dropping the connection
            status = 500
            log("internal error: %s" % traceback.format_exc())
            self.close_connection = True
            try:
                self._send_error(HttpError(1001, "chfront internal error: %r" % e), query_id)
            except OSError:
                pass
        finally:
            if tmp_path:
                try:
                    os.unlink(tmp_path)
                except OSError:
                    pass
            log("%s %d %.1fms %s" % (self.command, status, (time.monotonic() - started) * 1000, desc))

    def _drain_quietly(self):
        if self.command != "POST":
            return
        try:
            for _ in self._body_chunks():
                pass
        except (HttpError, ClientGone, OSError):
            self.close_connection = True

    def _split(self, raw):
        """Split a statement (bytes) into (Parsed, sql_text, insert data bytes or None)."""
        text = raw.decode("latin-1")
        parsed = parse_statement(text)
        if parsed.kind == "INSERT" and parsed.data_offset is not None:
            head = raw[:parsed.data_offset].decode("utf-8", "replace")
            # re-parse the head as UTF-8 so the INSERT text is correct for non-ASCII names
            parsed_utf8 = parse_statement(head)
            if parsed_utf8.data_offset is not None:
                parsed_utf8.data_offset = parsed.data_offset
                parsed = parsed_utf8
            return parsed, head, raw[parsed.data_offset:]
        try:
            sql_text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(36, "the query is not valid UTF-8", name="BAD_ARGUMENTS") from None
        if parsed.kind:
            parsed = parse_statement(sql_text)
        return parsed, sql_text, None

    def _temp_file(self):
        fd, path = tempfile.mkstemp(prefix="insert-", suffix=".data", dir=self.engine.tmp_dir)
        os.close(fd)
        return path

    def _spool_body(self):
        path = self._temp_file()
        try:
            with open(path, "wb") as f:
                for chunk in self._body_chunks():
                    f.write(chunk)
            self._body_consumed = True
        except BaseException:
            self.close_connection = True
            os.unlink(path)
            raise
        return path

    def _infile_compression(self):
        enc = self._content_encoding()
        if enc in TEXT_ENCODINGS:
            return "none"
        if enc in INFILE_COMPRESSION:
            return INFILE_COMPRESSION[enc]
        raise HttpError(48, "unsupported Content-Encoding %r" % enc, status=400)

    @staticmethod
    def _summary(res, payload, started):
        def get(name):
            try:
                return int(getattr(res, name)())
            except Exception:  # noqa: BLE001 - older/newer chdb may lack a counter
                return 0

        return json.dumps({
            "read_rows": str(get("rows_read")),
            "read_bytes": str(get("bytes_read")),
            "written_rows": str(get("rows_written")),
            "written_bytes": str(get("bytes_written")),
            "total_rows_to_read": "0",
            "result_rows": "0",
            "result_bytes": str(len(payload)),
            "elapsed_ns": str(int((time.monotonic() - started) * 1e9)),
        }, separators=(",", ":"))


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser(description="ClickHouse-HTTP-compatible front over chdb-core")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18123, help="0 picks a free port")
    ap.add_argument("--data", required=True, help="engine data directory (created if missing)")
    ap.add_argument("--parent-pid", type=int, default=0, help="exit when this process is gone")
    ap.add_argument("--remove-on-orphan", default=None, metavar="DIR",
                    help="delete DIR (e.g. the test's temporary directory) when exiting because "
                         "--parent-pid is gone")
    ap.add_argument("--user", default=None)
    ap.add_argument("--password", default=None)
    ap.add_argument("--create-database", action="append", default=[],
                    help="CREATE DATABASE IF NOT EXISTS at startup (repeatable)")
    args = ap.parse_args()

    engine = Engine(args.data)
    for db in args.create_database:
        engine.execute("CREATE DATABASE IF NOT EXISTS %s" % quote_ident(db), "TabSeparated",
                       None, [], {})
    Handler.engine = engine
    if args.user is not None or args.password is not None:
        Handler.auth = (args.user or "default", args.password or "")

    server = Server((args.host, args.port), Handler)
    host, port = server.server_address[:2]
    stopping = threading.Event()

    def stop(reason):
        if stopping.is_set():
            return
        stopping.set()
        log("stopping: %s" % reason)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, lambda *_: stop("SIGTERM"))
    signal.signal(signal.SIGINT, lambda *_: stop("SIGINT"))

    if args.parent_pid:
        def watch_parent():
            while not stopping.is_set():
                if not pid_alive(args.parent_pid):
                    stop("parent %d is gone" % args.parent_pid)
                    return
                time.sleep(0.5)

        threading.Thread(target=watch_parent, daemon=True).start()

    log("engine ClickHouse %s (chdb-core), data %s" % (engine.version, engine.data_dir))
    code = 0
    try:
        try:
            sys.stdout.write("listening on %s:%d\n" % (host, port))
            sys.stdout.flush()
        except OSError as e:  # whoever started us is gone already
            log("cannot report readiness on stdout (%s); exiting" % e)
            code = 1
        else:
            server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        engine.close()
        log("stopped")
        if args.remove_on_orphan and args.parent_pid and not pid_alive(args.parent_pid):
            import shutil
            shutil.rmtree(args.remove_on_orphan, ignore_errors=True)
    try:
        sys.stdout.flush()
    except OSError:
        pass
    sys.stderr.flush()
    # chdb's background threads can keep a normal interpreter exit waiting; the data is flushed
    # by close() above.
    os._exit(code)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


if __name__ == "__main__":
    main()
