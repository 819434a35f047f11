#!/usr/bin/python3
"""t/tools/echo_backend.py PORT LOG -- the plain HTTP backend of the nginx
tests: answers every request with 200 and the request headers exactly as
they arrived (names as sent), and appends one line per request to LOG,
so a test can count what reached the backend and see every header."""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > 0:
            self.rfile.read(n)
        heads = "".join("%s: %s\n" % (k, v) for k, v in self.headers.items())
        with open(sys.argv[2], "a") as log:
            log.write("REQ %s %s | %s\n" % (self.command, self.path,
                                            heads.replace("\n", " | ")))
        body = ("backend %s %s\n%s" % (self.command, self.path, heads)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = answer

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
