#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for rosterd's tests, on loopback.

Prints the port it listens on, then stores every accepted message in --dir as
NNNN.eml (the bytes received) and NNNN.json (envelope, subject, decoded text
body and attachments, parsed with Python's email package).

Modes: --fail-first N answers 451 to the first N messages (a server that is
busy); --reject answers 550 to every message; --drop-mid-data N closes the
connection in the middle of the first N messages' DATA (a server or network
that dies while the message is being sent). NNNN.acked marks a message whose
250 the client is known to have read (it sent another command). --auth USER:PASSWORD requires
that login (AUTH PLAIN or LOGIN, allowed without TLS on loopback) and records
the user name of each message's session as "login". --reject-rcpt ADDRESS
(repeatable) answers 550 to RCPT TO that address, taking the others.
"""
import argparse
import asyncio
import email
import email.policy
import json
import os
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Handler:
    def __init__(self, args):
        self.args = args
        self.seen = 0
        self.stored = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.args.reject_rcpt:
            return "550 5.1.1 <%s>: no such mailbox (test server)" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.seen += 1
        if self.args.reject:
            return "550 5.7.1 mailbox unavailable (test server rejects everything)"
        if self.seen <= self.args.fail_first:
            return "451 4.3.0 try again later (test server)"
        self.stored += 1
        base = os.path.join(self.args.dir, f"{self.stored:04d}")
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        attachments = {
            part.get_filename(): part.get_content()
            for part in msg.iter_attachments()
            if part.get_filename()
        }
        info = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(msg["subject"]),
            "to": str(msg["to"]),
            "message_id": str(msg["message-id"]),
            "login": session.auth_data.login.decode() if session.auth_data else None,
            "text": body.get_content() if body is not None else "",
            "attachments": {
                k: v if isinstance(v, str) else v.decode("utf-8") for k, v in attachments.items()
            },
        }
        with open(base + ".json.tmp", "w") as f:
            json.dump(info, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        # The commit point: from here the message counts as received.
        os.rename(base + ".json.tmp", base + ".json")
        session.unacknowledged = base
        return "250 2.0.0 OK"


class Authenticator:
    def __init__(self, user_password):
        user, password = user_password.split(":", 1)
        self.user, self.password = user.encode(), password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


class DroppingSMTP(SMTP):
    """Closes the connection after the first line of DATA, while drops remain.

    Marks a stored message NNNN.acked when the client sends its next command
    (QUIT or MAIL): the client has read the 250. A message stored without that
    mark was taken while the client died (or hung up) before hearing so."""

    drops = 0

    def acknowledge(self):
        base = getattr(self.session, "unacknowledged", None)
        if base:
            self.session.unacknowledged = None
            open(base + ".acked", "w").close()

    async def smtp_QUIT(self, arg):
        self.acknowledge()
        return await super().smtp_QUIT(arg)

    async def smtp_MAIL(self, arg):
        self.acknowledge()
        return await super().smtp_MAIL(arg)

    async def smtp_DATA(self, arg):
        if DroppingSMTP.drops > 0:
            DroppingSMTP.drops -= 1
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            await self._reader.readline()
            self.transport.close()
            return
        return await super().smtp_DATA(arg)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--reject", action="store_true")
    p.add_argument("--drop-mid-data", type=int, default=0)
    p.add_argument("--auth", metavar="USER:PASSWORD")
    p.add_argument("--reject-rcpt", metavar="ADDRESS", action="append", default=[])
    args = p.parse_args()
    args.reject_rcpt = [a.lower() for a in args.reject_rcpt]
    os.makedirs(args.dir, exist_ok=True)
    handler = Handler(args)
    DroppingSMTP.drops = args.drop_mid_data
    auth = {}
    warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
    if args.auth:
        auth = dict(
            authenticator=Authenticator(args.auth),
            auth_required=True,
            auth_require_tls=False,
        )
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(
            lambda: DroppingSMTP(handler, hostname="smtp.test", enable_SMTPUTF8=True, **auth),
            "127.0.0.1",
            args.port,
        )
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
