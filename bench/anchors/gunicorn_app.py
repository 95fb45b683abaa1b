"""Trivial WSGI app for the gunicorn anchor of the forkwatch benchmark."""


def app(environ, start_response):
    body = b"ok\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
