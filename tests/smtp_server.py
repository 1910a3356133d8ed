#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for rosterd's tests, on loopback.

Prints the port it listens on, then stores every accepted message in --dir as
NNNN.eml (the bytes received) and NNNN.json (envelope, subject, decoded text
body and attachments, parsed with Python's email package).

Modes: --fail-first N answers 451 to the first N messages (a server that is
busy); --reject answers 550 to every message; --drop-mid-data N closes the
connection in the middle of the first N messages' DATA (a server or network
that dies while the message is being sent).
"""
import argparse
import asyncio
import email
import email.policy
import json
import os

from aiosmtpd.smtp import SMTP


class Handler:
    def __init__(self, args):
        self.args = args
        self.seen = 0
        self.stored = 0

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
            "text": body.get_content() if body is not None else "",
            "attachments": {
                k: v if isinstance(v, str) else v.decode("utf-8") for k, v in attachments.items()
            },
        }
        with open(base + ".json.tmp", "w") as f:
            json.dump(info, f)
        os.rename(base + ".json.tmp", base + ".json")
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 2.0.0 OK"


class DroppingSMTP(SMTP):
    """Closes the connection after the first line of DATA, while drops remain."""

    drops = 0

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
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    handler = Handler(args)
    DroppingSMTP.drops = args.drop_mid_data
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(
            lambda: DroppingSMTP(handler, hostname="smtp.test", enable_SMTPUTF8=True),
            "127.0.0.1",
            args.port,
        )
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
