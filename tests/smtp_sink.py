"""A real SMTP server for the alert tests (aiosmtpd): appends each received mail as one JSON line.

usage: smtp_sink.py --port N --out FILE [--tls none|starttls|tls --cert C --key K] [--user U --password P]
Prints READY once it accepts connections.
"""
import argparse
import email
import email.policy
import json
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, out, implicit_tls):
        self.out = out
        # with implicit TLS the listener itself is wrapped: no plain connection gets this far
        self.implicit_tls = implicit_tls

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                       policy=email.policy.default)
        parts = {}
        for part in msg.walk():
            if part.get_content_type() in ("text/plain", "text/html"):
                parts[part.get_content_type()] = part.get_content()
        rec = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(msg["subject"]),
            "to": str(msg["to"]),
            "content_type": msg.get_content_type(),
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
            "authenticated": bool(session.authenticated),
            "tls": self.implicit_tls or session.ssl is not None,
        }
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return "250 OK"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tls", default="none", choices=["none", "starttls", "tls"])
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--user")
    ap.add_argument("--password")
    a = ap.parse_args()

    kwargs = {}
    if a.tls != "none":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
        if a.tls == "starttls":
            kwargs.update(tls_context=ctx, require_starttls=True)
        else:
            kwargs.update(ssl_context=ctx)
    if a.user:
        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword)
                  and auth_data.login.decode() == a.user
                  and auth_data.password.decode() == a.password)
            return AuthResult(success=ok)
        kwargs.update(authenticator=authenticator, auth_required=True,
                      # implicit TLS is encrypted from the first byte; aiosmtpd only tracks STARTTLS
                      auth_require_tls=a.tls == "starttls")
    ctl = Controller(Sink(a.out, a.tls == "tls"), hostname="127.0.0.1", port=a.port, **kwargs)
    ctl.start()
    print("READY", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        ctl.stop()


if __name__ == "__main__":
    sys.exit(main())
