"""WSGI app for the HTTP anchors of bench/http.py (gunicorn and eventlet.wsgi):
200 "OK" text/plain for /healthcheck, 404 for anything else."""

OK = b"OK"
NOT_FOUND = b"not found\n"


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/healthcheck":
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", "2")])
        return [OK]
    start_response("404 Not Found", [("Content-Type", "text/plain"),
                                     ("Content-Length", str(len(NOT_FOUND)))])
    return [NOT_FOUND]
