"""Placeholder while the api is being written (replaced entirely)."""


class RestApi:
    def __init__(self, mailbox, signer, **kw):
        self.mailbox = mailbox

    def __call__(self, environ, start_response):
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"not found\n"]
