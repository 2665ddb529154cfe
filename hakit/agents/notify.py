"""Delivering the events of :mod:`hakit.status.events` from the node, by every channel of the
inventory's ``notify``: a command (the event in its environment and as JSON on stdin), a mail
through an SMTP relay, a webhook (a JSON POST). Each channel gets ``notify.timeout_seconds``;
a channel that fails is said in the log and never stops the others, nor the caller (the
metrics agent delivers from a thread of its own: a slow relay never delays a health answer).
"""

from __future__ import annotations

import json
import os
import queue
import smtplib
import subprocess
import threading
import urllib.request
from collections.abc import Callable
from email.message import EmailMessage

from hakit.inventory.model import Notify
from hakit.status.events import Event

Logger = Callable[[str], None]


def _command(event: Event, settings: Notify) -> None:
    assert settings.command is not None
    done = subprocess.run(list(settings.command), input=event.json() + "\n", text=True, capture_output=True,
                          timeout=settings.timeout_seconds, env={**os.environ, **event.environment()})
    if done.returncode != 0:
        tail = " / ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
        raise OSError(f"exited {done.returncode}" + (f": {tail}" if tail else ""))


def _mail(event: Event, settings: Notify) -> None:
    assert settings.mail is not None
    message = EmailMessage()
    message["Subject"] = event.subject
    message["From"] = settings.mail.sender
    message["To"] = ", ".join(settings.mail.to)
    message.set_content(f"{event.text}\n\n{json.dumps(event.document(), indent=2, sort_keys=True)}\n")
    with smtplib.SMTP(settings.mail.smtp_host, settings.mail.smtp_port, timeout=settings.timeout_seconds) as smtp:
        smtp.send_message(message)


def _webhook(event: Event, settings: Notify) -> None:
    assert settings.webhook is not None
    request = urllib.request.Request(settings.webhook.url, data=event.json().encode(), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "hakit"})
    with urllib.request.urlopen(request, timeout=settings.timeout_seconds) as answer:
        answer.read()


def channels(settings: Notify) -> list[tuple[str, Callable[[Event, Notify], None]]]:
    found: list[tuple[str, Callable[[Event, Notify], None]]] = []
    if settings.command:
        found.append(("command", _command))
    if settings.mail:
        found.append(("mail", _mail))
    if settings.webhook:
        found.append(("webhook", _webhook))
    return found


def deliver(event: Event, settings: Notify, log: Logger) -> list[str]:
    """Send ``event`` by every channel; the channels that failed (each said in the log)."""
    failed = []
    for name, send in channels(settings):
        try:
            send(event, settings)
            log(f"notified {event.kind} of {event.node} by {name}")
        except Exception as exc:  # noqa: BLE001 - a channel's failure is said, never raised
            failed.append(name)
            log(f"could not notify {event.kind} of {event.node} by {name}: {str(exc) or type(exc).__name__}")
    return failed


class Notifier:
    """Delivers events in order from a thread of its own (the caller never waits)."""

    def __init__(self, settings: Notify, log: Logger) -> None:
        self.settings, self.log = settings, log
        self._queue: queue.Queue[Event | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True, name="hakit-notify")
        self._thread.start()

    def send(self, event: Event) -> None:
        self.log(f"event: {event.text}")
        if channels(self.settings):
            self._queue.put(event)

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            deliver(event, self.settings, self.log)

    def close(self, timeout: float = 30) -> None:
        """Deliver what is queued (within ``timeout``), then end."""
        self._queue.put(None)
        self._thread.join(timeout)
