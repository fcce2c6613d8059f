"""A real IMAP server for the tests: Debian's Dovecot (`make test` installs `dovecot-imapd`),
started as an unprivileged process with a configuration of its own on a free loopback port,
one test user (passwd-file, plain text password), a Maildir of its own, no TLS.

The system's Dovecot service is neither used nor needed: this instance reads only the
configuration written here, and listens on 127.0.0.1 only. Its folder is a fresh one under
the system's temporary folder, not pytest's `tmp_path`: the sockets in its `base_dir` must
stay under the 108 bytes a Unix socket's path may have, and when the tests run as root,
Dovecot runs as `nobody`, who cannot enter pytest's root-only folders.

When Dovecot is not installed, the tests that need it are skipped, except under CI
(`CI=true`), where its absence fails them (as `tests/web/test_docs_pages.py` does for
chromium)."""

from __future__ import annotations

import contextlib
import email
import email.policy
import grp
import imaplib
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.certificates import self_signed
from tests.serving import free_port

DOVECOT = Path("/usr/sbin/dovecot")
DOVEADM = Path("/usr/bin/doveadm")
IMAP_BINARY = Path("/usr/lib/dovecot/imap")
UNDER_CI = os.environ.get("CI") == "true"
INSTALLED = DOVECOT.exists() and IMAP_BINARY.exists()
USER = "legal"
PASSWORD = "imap-Pa55-for-tests"

needs_dovecot = pytest.mark.skipif(
    not INSTALLED and not UNDER_CI,
    reason=f"{DOVECOT} (dovecot-imapd) is not installed (`make test` installs it); "
    "under CI (CI=true) it is required and its absence fails",
)

_CONFIG = """\
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl}
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{folder}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {folder}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {folder}/users
  default_fields = uid={uid} gid={gid} home={folder}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0600
  }}
}}
"""


_PLAIN = "ssl = no\ndisable_plaintext_auth = no"
# TLS: STARTTLS on the IMAP port (a password only after it), and IMAPS on its own port.
_TLS = "ssl = required\nssl_cert = <{cert}\nssl_key = <{key}\ndisable_plaintext_auth = yes"


@dataclass
class Dovecot:
    """A running Dovecot: where it listens, its user, and what its mailbox holds."""

    folder: Path
    port: int
    # With TLS: the IMAPS port, and the certificate (for `localhost`) that vouches for it.
    tls_port: int = 0
    certificate: Path | None = None
    user: str = USER
    password: str = PASSWORD
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def url(
        self, *, password: str | None = None, folder: str = "INBOX", tls: str | None = None
    ) -> str:
        """The mailbox's URL: plain IMAP, or with `tls` "imaps" or "starttls" (the server's
        name is `localhost`, which its certificate names)."""
        secret = quote(self.password if password is None else password, safe="")
        if tls == "imaps":
            return f"imaps://{self.user}:{secret}@localhost:{self.tls_port}/{folder}"
        if tls == "starttls":
            return f"imap://{self.user}:{secret}@localhost:{self.port}/{folder}?starttls=1"
        return f"imap://{self.user}:{secret}@127.0.0.1:{self.port}/{folder}"

    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else "(no log)"

    def _connect(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        if self.certificate is not None:
            client.starttls(ssl.create_default_context(cafile=self.certificate))
        client.login(self.user, self.password)
        return client

    def deliver(self, *messages: bytes) -> None:
        """Put `messages` in the INBOX, unread (IMAP APPEND)."""
        client = self._connect()
        try:
            for message in messages:
                status, _ = client.append("INBOX", None, None, message)
                assert status == "OK", self.log()
        finally:
            client.logout()

    def flags(self) -> dict[str, set[str]]:
        """Each message's flags (`\\Seen`, `\\Flagged`; `\\Recent` left out), by its
        Message-ID."""
        client = self._connect()
        try:
            client.select("INBOX")
            status, data = client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            assert status == "OK"
        except imaplib.IMAP4.error:
            return {}  # an empty mailbox has no message 1
        finally:
            client.logout()
        found: dict[str, set[str]] = {}
        for item in data:
            if not isinstance(item, tuple):
                continue
            head, header = item
            message_id = str(
                email.message_from_bytes(header, policy=email.policy.default)["Message-ID"] or ""
            )
            flags = head.decode().partition("FLAGS (")[2].partition(")")[0].split()
            found[message_id] = {flag for flag in flags if flag != "\\Recent"}
        return found

    def mark_all_unread(self) -> None:
        client = self._connect()
        try:
            client.select("INBOX")
            client.store("1:*", "-FLAGS", "(\\Seen)")
        finally:
            client.logout()

    def kick(self) -> None:
        """Drop every IMAP connection of the test user, as a server that restarts does."""
        subprocess.run(
            [str(DOVEADM), "-c", str(self.folder / "dovecot.conf"), "kick", self.user],
            capture_output=True,
            check=True,
            timeout=30,
        )

    def start(self) -> None:
        """Start (or start again) the server on its port, and wait for its greeting."""
        options = _unprivileged()
        with (self.folder / "stderr.log").open("ab") as stderr:
            self.process = subprocess.Popen(
                [str(DOVECOT), "-F", "-c", str(self.folder / "dovecot.conf")],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
                **options,
            )
        deadline = time.monotonic() + 20
        while True:
            if self.process.poll() is not None:
                stderr = (self.folder / "stderr.log").read_text(errors="replace")
                pytest.fail(f"dovecot exited with {self.process.returncode}: {stderr}{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                    if probe.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"dovecot did not answer on port {self.port}: {self.log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server this fixture started (by its process id), and wait for it."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _unprivileged() -> dict[str, object]:
    """The user Dovecot runs as: this process's own, or `nobody` when that is root."""
    if os.getuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


def _identity() -> tuple[str, str, int, int]:
    """Name, group name, uid and gid of the user Dovecot runs as."""
    entry = pwd.getpwnam("nobody") if os.getuid() == 0 else pwd.getpwuid(os.getuid())
    return entry.pw_name, grp.getgrgid(entry.pw_gid).gr_name, entry.pw_uid, entry.pw_gid


@contextlib.contextmanager
def running_dovecot(*, tls: bool) -> Iterator[Dovecot]:
    """A Dovecot IMAP server with an empty INBOX for `USER`, stopped and removed after."""
    if not INSTALLED:
        pytest.fail(f"{DOVECOT} (Debian's dovecot-imapd) is required under CI and is missing")
    folder = Path(tempfile.mkdtemp(prefix="charter-imap-"))
    try:
        user, group, uid, gid = _identity()
        port, tls_port = free_port(), free_port() if tls else 0
        certificate = self_signed(folder, "localhost", ip="127.0.0.1") if tls else None
        security = _TLS.format(cert=certificate[0], key=certificate[1]) if certificate else _PLAIN
        (folder / "dovecot.conf").write_text(
            _CONFIG.format(
                folder=folder,
                user=user,
                group=group,
                uid=uid,
                gid=gid,
                port=port,
                tls_port=tls_port,
                ssl=security,
            )
        )
        (folder / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        for sub in ("run", "state", "mail", "home"):
            (folder / sub).mkdir()
        if os.getuid() == 0:
            for path in [folder, *folder.rglob("*")]:
                os.chown(path, uid, gid)
        server = Dovecot(
            folder=folder,
            port=port,
            tls_port=tls_port,
            certificate=certificate[0] if certificate else None,
        )
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A Dovecot IMAP server for this test, plain IMAP on a loopback port."""
    with running_dovecot(tls=False) as server:
        yield server


@pytest.fixture
def dovecot_tls() -> Iterator[Dovecot]:
    """A Dovecot IMAP server for this test that speaks only TLS: STARTTLS on its IMAP port,
    IMAPS on its `tls_port`, with a self-signed certificate for `localhost`."""
    with running_dovecot(tls=True) as server:
        yield server
