"""The viewer's pages: served from 127.0.0.1 (:func:`serve`) or written as a static site (:func:`export_site`).

Both hand the same page (``index.html``, ``static/app.js``, ``static/tokens.js``, ``static/style.css``,
package data) the same data files: ``data/index.js``, ``data/stats.js``, ``data/row-N.js`` and
``data/tokens-N.js``, each a script that passes its JSON to ``teichData(name, value)``. Scripts, not
``fetch``, so that the exported site opens from ``file://``. The server also answers
``data/labels-N.js?train_on_...=0|1`` with the labels of that policy (the exported token pages carry
per-flag label bits instead) and, while it prepares the rows in the background,
``data/progress.js?from=N`` with the prepared columns of the rows from ``N`` on.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import webbrowser
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from teich.errors import TeichError
from teich.files import write_text_atomic
from teich.view.data import ViewData

PAGE_FILES = ("index.html", "static/app.js", "static/tokens.js", "static/style.css")
_DATA = re.compile(r"/data/(index|stats|progress|row|tokens|labels)(?:-(\d+))?\.js")
#: The data files that use the tokenizer, which requests and the background batches take turns with.
_QUEUED = re.compile(r"/data/(tokens|labels)-\d+\.js")
_TYPES = MappingProxyType({".html": "text/html", ".js": "text/javascript", ".css": "text/css"})


def data_script(name: str, value: Any) -> str:
    """A data file: a script handing ``value`` to the page under ``name``.

    ``name``: the data's name (``index``, ``row-3``, ``tokens-3``, ``labels-3``).
    ``value``: JSON-ready data.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    return f"teichData({json.dumps(name)},{text});\n"


def page_file(name: str) -> bytes:
    """One of :data:`PAGE_FILES`, from the package.

    ``name``: its path under ``teich/view``.
    """
    return (files("teich.view") / name).read_bytes()


def export_site(view: ViewData, folder: str | Path) -> int:
    """Write the pages and every row's data to ``folder``, a site that opens from ``file://``; returns
    the number of files written.

    ``view``: the data to show.
    ``folder``: where to write (created; files already there are replaced).
    """
    out = Path(folder)
    view.prepare()
    written = 0
    for name in PAGE_FILES:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / name, page_file(name).decode())
        written += 1
    (out / "data").mkdir(exist_ok=True)
    index = view.index(live=False)
    write_text_atomic(out / "data" / "index.js", data_script("index", index))
    write_text_atomic(out / "data" / "stats.js", data_script("stats", view.stats()))
    for row in range(view.row_count):
        write_text_atomic(out / "data" / f"row-{row}.js", data_script(f"row-{row}", view.conversation(row)))
        written += 1
        if index["tokens"] and row in view.prepared_index:
            tokens = view.tokens(row, bits=True)
            write_text_atomic(out / "data" / f"tokens-{row}.js", data_script(f"tokens-{row}", tokens))
            written += 1
    return written + 2


def answer(view: ViewData, path: str, query: str) -> tuple[str, bytes]:
    """The content type and body of a request for ``path`` (with ``query``), as the server answers it.

    ``view``: the data to show.
    ``path``: the request's path (``/``, ``/static/app.js``, ``/data/tokens-3.js``...).
    ``query``: its query string (the flags of a ``labels`` request).
    """
    match = _DATA.fullmatch(path)
    if match:
        kind, row = match.group(1), int(match.group(2) or 0)
        name = kind if kind in ("index", "stats", "progress") else f"{kind}-{row}"
        return "text/javascript", data_script(name, _data(view, kind, row, query)).encode()
    name = "index.html" if path == "/" else path.lstrip("/")
    if name not in PAGE_FILES:
        raise FileNotFoundError(path)
    return _TYPES[Path(name).suffix], page_file(name)


def _data(view: ViewData, kind: str, row: int, query: str) -> Any:
    if kind == "index":
        return view.index(live=True)
    if kind == "stats":
        return view.stats()
    if kind == "progress":
        start = parse_qs(query).get("from", ["0"])[-1]
        return view.progress(int(start) if start.isdigit() else 0)
    if kind == "row":
        return view.conversation(row)
    if kind == "tokens":
        return view.tokens(row, bits=False)
    flags = {flag: values[-1] == "1" for flag, values in parse_qs(query).items()}
    return view.labels(row, flags)


def _handler(view: ViewData, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """Answers the page and its data; a bad request gets 404 (no such file) or 400 (a TeichError)."""

        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            url = urlsplit(self.path)
            try:
                with lock if _QUEUED.fullmatch(url.path) else contextlib.nullcontext():  # one tokenizer: take turns
                    kind, body = answer(view, url.path, url.query)
            except FileNotFoundError:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            except TeichError as error:
                self.send_error(HTTPStatus.BAD_REQUEST, str(error))
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
            """Quiet: the terminal shows only the address."""

    return Handler


def make_server(view: ViewData, port: int = 0) -> ThreadingHTTPServer:
    """A server for the viewer on 127.0.0.1 (not yet serving: call ``serve_forever``).

    ``view``: the data to show.
    ``port``: the port, ``0`` for any free one (``server.server_address`` says which).
    """
    view.index(live=True)  # the rows' summaries, computed once before the first request
    turns = threading.Lock()
    view.start(turns)  # preparing the rows and the plots' data, while the first page loads
    try:
        return ThreadingHTTPServer(("127.0.0.1", port), _handler(view, turns))
    except OSError as error:
        raise TeichError(f"cannot serve on 127.0.0.1:{port}: {error.strerror}") from None


def serve(view: ViewData, port: int = 0, *, open_browser: bool = True, on_ready: Callable[[str], None] = print) -> None:
    """Serve the viewer on 127.0.0.1 until interrupted.

    ``view``: the data to show.
    ``port``: as in :func:`make_server`.
    ``open_browser``: open the page in the default browser.
    ``on_ready``: called with the page's address once it is served.
    """
    server = make_server(view, port)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    on_ready(url)
    if open_browser:
        webbrowser.open(url)
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
