#!/usr/bin/env python3
"""A small colors API for the example's tests: GET /colors/<Name> answers {"family": ...}, or
404 for a color it does not know. Python's own http.server, on loopback.

    python3 tests/colors_api.py [PORT] [--status CODE]

prints "listening on <port>" once it listens. With --status it answers every request with that
status instead (503: an API that is down).
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

FAMILIES = {
    "Black": "neutral", "White": "neutral", "Silver": "neutral", "Gray": "neutral",
    "Beige": "neutral", "Khaki": "neutral",
    "Red": "red", "Maroon": "red", "Crimson": "red", "Brown": "red", "Salmon": "red",
    "Coral": "red", "Pink": "red",
    "Orange": "orange", "Gold": "yellow", "Yellow": "yellow", "Olive": "yellow",
    "Lime": "green", "Green": "green", "Teal": "green", "Turquoise": "green",
    "Blue": "blue", "Navy": "blue", "Cyan": "blue",
    "Indigo": "purple", "Violet": "purple", "Purple": "purple", "Magenta": "purple",
}


class Colors(BaseHTTPRequestHandler):
    forced_status = None

    def do_GET(self):
        if self.forced_status is not None:
            self.answer(self.forced_status, {"error": "the colors API is down"})
            return
        prefix = "/colors/"
        name = unquote(self.path[len(prefix):]) if self.path.startswith(prefix) else None
        family = FAMILIES.get(name)
        if family is None:
            self.answer(404, {"error": f"no color {name!r}"})
        else:
            self.answer(200, {"family": family})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--status" in args:
        at = args.index("--status")
        Colors.forced_status = int(args[at + 1])
        del args[at:at + 2]
    server = ThreadingHTTPServer(("127.0.0.1", int(args[0]) if args else 0), Colors)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()
