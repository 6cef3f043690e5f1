"""The CHAP exchange (RFC 1994) with the MS-CHAPv2 (RFC 2759) or MD5 algorithm.

Owns the packets of the Authentication phase and both roles:
- `Authenticator` (server): sends a Challenge (retransmitted until answered), checks the
  Response against the secret that `lookup(user)` returns, answers Success or Failure
  (MS-CHAPv2: "S=<authenticator response> M=..." / "E=691 R=0 C=... V=3 M=...") and
  repeats the same answer to a retransmitted Response.
- `Peer` (client): answers each Challenge with its name and response (repeated until the
  verdict comes, in case the verdict was lost) and, for MS-CHAPv2, checks the server's
  authenticator response in Success (mutual authentication).
Events: ("auth-ok", user) and ("auth-failed", user, reason). Pure: time and randomness
are passed in (`random_bytes`), secrets come from a callable.
"""
from __future__ import annotations

import hmac
import os
import re
from typing import Callable

from . import mschap
from .fsm import pack_packet, unpack_packet

PROTOCOL = 0xC223
CHALLENGE, RESPONSE, SUCCESS, FAILURE = 1, 2, 3, 4
MSCHAPV2, CHAP_MD5 = "mschapv2", "chap-md5"
METHODS = (MSCHAPV2, CHAP_MD5)


# CHAP packets share the LCP packet layout (code, identifier, length, data).
pack = pack_packet
unpack = unpack_packet


def value_and_name(data: bytes) -> tuple[bytes, bytes] | None:
    """A Challenge or Response body: Value-Size, Value, Name."""
    if not data or 1 + data[0] > len(data):
        return None
    return data[1:1 + data[0]], data[1 + data[0]:]


class Authenticator:
    def __init__(self, method: str, lookup: Callable[[str], str | None], *, name: str = "vispd",
                 restart: float = 1.0, max_challenges: int = 10,
                 random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown CHAP algorithm {method!r}")
        self.method, self.lookup, self.name = method, lookup, name
        self.restart, self._left = restart, max_challenges
        self.random_bytes = random_bytes
        self.out: list[tuple[int, bytes]] = []
        self.events: list[tuple] = []
        self.user: str | None = None
        self.done = False
        self._ident = random_bytes(1)[0]
        self._challenge = b""
        self._deadline: float | None = None
        self._answer: bytes | None = None

    def start(self, now: float) -> None:
        self._ident = (self._ident + 1) & 0xFF
        self._challenge = self.random_bytes(16)
        self._send_challenge(now)

    def _send_challenge(self, now: float) -> None:
        body = bytes((len(self._challenge),)) + self._challenge + self.name.encode()
        self.out.append((PROTOCOL, pack(CHALLENGE, self._ident, body)))
        self._left -= 1
        self._deadline = now + self.restart

    def deadline(self) -> float | None:
        return self._deadline

    def tick(self, now: float) -> None:
        if self._deadline is None or now < self._deadline:
            return
        if self._left <= 0:
            self._deadline = None
            self.done = True
            self.events.append(("auth-failed", None, "no response to the CHAP challenge"))
            return
        self._send_challenge(now)

    def receive(self, packet: bytes, now: float) -> None:
        parsed = unpack(packet)
        if parsed is None or parsed[0] != RESPONSE or parsed[1] != self._ident:
            return
        if self._answer is not None:  # a retransmitted Response: same answer again
            self.out.append((PROTOCOL, self._answer))
            return
        fields = value_and_name(parsed[2])
        if fields is None:
            return
        value, raw_name = fields
        name = raw_name.decode("utf-8", "replace")
        user = mschap.strip_domain(name)
        secret = self.lookup(user)
        ok, success_message = False, ""
        if self.method == MSCHAPV2 and len(value) == 49:
            peer_challenge, nt_response = value[:16], value[24:48]
            if secret is not None:
                expected = mschap.generate_nt_response(self._challenge, peer_challenge, user, secret)
                ok = hmac.compare_digest(expected, nt_response)
            if ok:
                success_message = mschap.generate_authenticator_response(
                    secret, nt_response, peer_challenge, self._challenge, user) + " M=Access granted"
        elif self.method == CHAP_MD5 and len(value) == 16 and secret is not None:
            ok = hmac.compare_digest(mschap.chap_md5_response(self._ident, secret, self._challenge), value)
            success_message = "Access granted"
        self._deadline = None
        self.done = True
        self.user = user
        if ok:
            self._answer = pack(SUCCESS, self._ident, success_message.encode())
            self.events.append(("auth-ok", user))
        else:
            if self.method == MSCHAPV2:
                message = f"E=691 R=0 C={self.random_bytes(16).hex().upper()} V=3 M=Authentication failed"
            else:
                message = "Authentication failed"
            self._answer = pack(FAILURE, self._ident, message.encode())
            reason = "unknown user" if secret is None else "wrong password"
            self.events.append(("auth-failed", user, reason))
        self.out.append((PROTOCOL, self._answer))


class Peer:
    def __init__(self, method: str, name: str, password: str, *, restart: float = 1.0,
                 random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown CHAP algorithm {method!r}")
        self.method, self.name, self.password = method, name, password
        self.random_bytes = random_bytes
        self.out: list[tuple[int, bytes]] = []
        self.events: list[tuple] = []
        self.done = False
        self._ident: int | None = None
        self._expected_success = ""
        self._response: bytes | None = None
        self.restart = restart
        self._deadline: float | None = None

    def deadline(self) -> float | None:
        return self._deadline

    def tick(self, now: float) -> None:
        """Repeat the Response until Success or Failure comes: if those are lost, the
        authenticator has stopped challenging, and only a repeated Response (answered with
        the same verdict) gets the verdict to us again."""
        if self._deadline is not None and now >= self._deadline and not self.done and self._response:
            self.out.append((PROTOCOL, self._response))
            self._deadline = now + self.restart

    def receive(self, packet: bytes, now: float) -> None:
        parsed = unpack(packet)
        if parsed is None or self.done:
            return
        code, ident, data = parsed
        if code == CHALLENGE:
            self._on_challenge(ident, data)
            self._deadline = now + self.restart
        elif code in (SUCCESS, FAILURE) and ident == self._ident:
            message = data.decode("utf-8", "replace")
            self.done = True
            self._deadline = None
            if code == FAILURE:
                match = re.search(r"M=(.*)$", message)
                self.events.append(("auth-failed", self.name,
                                    "server refused: " + (match.group(1) if match else message or "failure")))
            elif self.method == MSCHAPV2 and not hmac.compare_digest(
                    message[:42].encode(), self._expected_success.encode()):
                self.events.append(("auth-failed", self.name,
                                    "the server's authenticator response is wrong (not the real server?)"))
            else:
                self.events.append(("auth-ok", self.name))

    def _on_challenge(self, ident: int, data: bytes) -> None:
        fields = value_and_name(data)
        if fields is None:
            return
        challenge = fields[0]
        if ident == self._ident and self._response is not None:  # retransmitted challenge
            self.out.append((PROTOCOL, self._response))
            return
        user = mschap.strip_domain(self.name)
        if self.method == MSCHAPV2:
            if len(challenge) != 16:
                return
            peer_challenge = self.random_bytes(16)
            nt_response = mschap.generate_nt_response(challenge, peer_challenge, user, self.password)
            value = peer_challenge + bytes(8) + nt_response + b"\0"
            self._expected_success = mschap.generate_authenticator_response(
                self.password, nt_response, peer_challenge, challenge, user)
        else:
            value = mschap.chap_md5_response(ident, self.password, challenge)
        self._ident = ident
        self._response = pack(RESPONSE, ident, bytes((len(value),)) + value + self.name.encode())
        self.out.append((PROTOCOL, self._response))
