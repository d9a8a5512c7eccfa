"""moto's server with two timestamp shapes fixed, for the Rust AWS SDK.

moto 5.2.5 answers AWS Config's BatchGetResourceConfig with times like
"2026-11-28 19:47:28.832496+00:00" and CloudHSMv2's DescribeClusters with
"2026-11-28T19:48:59.947622" (no zone). The awsJson protocols specify epoch seconds; boto3 is
lenient, the Rust SDK is not. This wrapper rewrites exactly those two shapes, when they are a
whole JSON string value of a JSON response (not inside an embedded document),
to epoch seconds. Everything else passes through untouched.

Binds 127.0.0.1 on a free port and prints "PORT <n>" on stdout once it accepts connections.
Stops on SIGTERM or when stdin closes (so it never outlives the test that started it).
"""

import datetime
import re
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

# A quoted timestamp not preceded by a backslash (so not inside an embedded JSON string).
SHAPES = re.compile(
    rb'(?<!\\)"(\d{4}-\d\d-\d\d)(?: (\d\d:\d\d:\d\d(?:\.\d+)?)\+00:00|T(\d\d:\d\d:\d\d(?:\.\d+)?))"'
)


def to_epoch(match):
    date = match.group(1).decode()
    time = (match.group(2) or match.group(3)).decode()
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in time else "%Y-%m-%d %H:%M:%S"
    t = datetime.datetime.strptime(f"{date} {time}", fmt).replace(tzinfo=datetime.timezone.utc)
    return repr(t.timestamp()).encode()


def fixed(app):
    def wrapper(environ, start_response):
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"] = status
            captured["headers"] = headers
            return lambda data: None

        body = b"".join(app(environ, capture))
        headers = captured["headers"]
        # moto labels its JSON answers text/html, so the body decides.
        if body.lstrip()[:1] == b"{":
            body = SHAPES.sub(to_epoch, body)
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(body))))
        start_response(captured["status"], headers)
        return [body]

    return wrapper


def main():
    app = fixed(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    print(f"PORT {server.server_address[1]}", flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), server.shutdown()), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
