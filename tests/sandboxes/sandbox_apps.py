"""A small app for sandbox tests: a Python HTTP server on HOST:PORT that says hello and logs requests."""

from __future__ import annotations

import textwrap
from pathlib import Path

APP = textwrap.dedent(
    """
    import http.server, os

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"hello from the sandbox"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):
            print("served", format % args, flush=True)

    print("sandbox app listening on", os.environ["HOST"], os.environ["PORT"], flush=True)
    http.server.HTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler).serve_forever()
    """
)


def write_app(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.txt").write_text("")
    (folder / "app.py").write_text(APP)
    for path in (folder, folder / "requirements.txt", folder / "app.py"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder
