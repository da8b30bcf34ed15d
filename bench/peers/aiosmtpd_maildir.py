"""aiosmtpd peer for bench/run.sh: accepts every message and stores it in a Maildir.

Usage: python3 aiosmtpd_maildir.py HOST PORT MAILDIR
This is what a user of Debian's python3-aiosmtpd would write for a capture server: one asyncio
event loop, each message written with mailbox.Maildir.add (tmp/ then rename into new/).
Fails loudly (traceback, non-zero exit) if the port is taken or the Maildir cannot be created.
"""
import asyncio
import mailbox
import signal
import sys

from aiosmtpd.smtp import SMTP


class MaildirHandler:
    def __init__(self, path):
        self.box = mailbox.Maildir(path, create=True)

    async def handle_DATA(self, server, session, envelope):
        self.box.add(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


async def main(host, port, path):
    handler = MaildirHandler(path)
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(
        lambda: SMTP(handler, data_size_limit=64 * 1024 * 1024, enable_SMTPUTF8=True),
        host=host, port=port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"aiosmtpd listening on {host}:{port}, Maildir {path}", flush=True)
    await stop.wait()
    srv.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
