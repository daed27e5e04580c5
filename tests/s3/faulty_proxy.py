#!/usr/bin/env python3
"""An HTTP proxy in front of the test gateway that breaks some of its answers on purpose.

    faulty_proxy.py --upstream http://127.0.0.1:PORT --port-file FILE
                    [--fail-every N] [--reset-every N] [--truncate-every N]
                    [--slow-every N --slow-seconds S] [--methods GET,PUT] [--after N]
                    [--log FILE]

Requests are forwarded unchanged (the Host header too, so that SigV4 signatures still
match) and answered with the gateway's answer, except that the Nth, 2Nth, ... request of
each kind of fault gets, instead:
  fail      503 SlowDown, without asking the gateway
  reset     the connection closed without an answer
  truncate  the headers and half of the body, then the connection closed
  slow      the answer after S seconds
Only requests of --methods are broken (default GET: the reads under test), and with
--after N none of the first N of them. The port it listens on (loopback) is
written to --port-file once it accepts connections; each fault injected is one line in
--log.
"""
import argparse
import http.client
import http.server
import socketserver
import sys
import threading
import time
import urllib.parse

HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
       "upgrade"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log")
    for kind in ("fail", "reset", "truncate", "slow"):
        ap.add_argument("--%s-every" % kind, type=int, default=0)
    ap.add_argument("--slow-seconds", type=float, default=2.0)
    ap.add_argument("--methods", default="GET")
    ap.add_argument("--after", type=int, default=0)
    a = ap.parse_args()
    up = urllib.parse.urlsplit(a.upstream)
    lock = threading.Lock()
    count = {"get": 0}
    log = open(a.log, "a", buffering=1) if a.log else None

    def fault_for(n):
        for kind in ("fail", "reset", "truncate", "slow"):
            every = getattr(a, "%s_every" % kind)
            if every and n % every == 0:
                return kind
        return None

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def forward(self):
            fault = None
            if self.command in a.methods.split(","):
                with lock:
                    count["get"] += 1
                    if count["get"] > a.after:
                        fault = fault_for(count["get"] - a.after)
            if fault and log:
                log.write("%s %s\n" % (fault, self.path))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if fault == "fail":
                msg = b"<Error><Code>SlowDown</Code></Error>"
                self.send_response(503)
                self.send_header("Content-Length", str(len(msg)))
                self.end_headers()
                self.wfile.write(msg)
                return
            if fault == "reset":
                self.close_connection = True
                self.connection.close()
                return
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                conn.putheader(k, v)
            conn.endheaders(body)
            r = conn.getresponse()
            data = r.read()
            conn.close()
            if fault == "slow":
                time.sleep(a.slow_seconds)
            self.send_response_only(r.status, r.reason)
            for k, v in r.getheaders():
                if k.lower() not in HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            clen = r.getheader("Content-Length")
            self.send_header("Content-Length", clen if self.command == "HEAD" and clen
                             else str(len(data)))
            self.end_headers()
            if fault == "truncate" and len(data) > 1:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.close()
                return
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = Server(("127.0.0.1", 0), Handler)
    with open(a.port_file + ".tmp", "w") as f:
        f.write("%d\n" % srv.server_address[1])
    import os
    os.rename(a.port_file + ".tmp", a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
