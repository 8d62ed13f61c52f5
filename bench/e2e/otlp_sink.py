"""An OTLP/HTTP sink for benchmarks: answers every POST (``/v1/traces``) with 200 and counts the
requests and bytes it got, printed at exit. It decodes nothing, so the cost measured is the
service's own (building, sampling, encoding and posting spans).

    python3 bench/e2e/otlp_sink.py PORT
"""

import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

received = {"requests": 0, "bytes": 0}


class Sink(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (the stdlib's name)
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        received["requests"] += 1
        received["bytes"] += length
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        print(f"otlp sink: {received['requests']} requests, {received['bytes']} bytes", flush=True)


if __name__ == "__main__":
    main()
