"""The cryptography of CHAP: MS-CHAPv2 (RFC 2759) and CHAP with MD5 (RFC 1994).

Owns only the functions of the RFCs (names as there): NtPasswordHash, ChallengeHash,
ChallengeResponse, GenerateNTResponse, GenerateAuthenticatorResponse, and the MD5 CHAP
response. MD4 (for the NT hash) and DES come from pycryptodome: this machine's hashlib
has no MD4 (OpenSSL 3). MS-CHAPv2 is broken (its three DES keys reduce to one 56-bit
key): it identifies users, it does not protect them. Pure functions.
"""
from __future__ import annotations

import hashlib

from Crypto.Cipher import DES
from Crypto.Hash import MD4

MAGIC1 = bytes.fromhex("4D616769632073657276657220746F20636C69656E74207369676E696E6720636F6E7374616E74")
MAGIC2 = bytes.fromhex("50616420746F206D616B6520697420646F206D6F7265207468616E206F6E6520697465726174696F6E")


def md4(data: bytes) -> bytes:
    return MD4.new(data).digest()


def nt_password_hash(password: str) -> bytes:
    return md4(password.encode("utf-16-le"))


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes, username: str) -> bytes:
    """8 octets; `username` without any domain prefix (RFC 2759 section 8.2)."""
    return hashlib.sha1(peer_challenge + authenticator_challenge + username.encode()).digest()[:8]


def _des_key(key7: bytes) -> bytes:
    """Spread 56 key bits over 8 octets (the parity bit of each is ignored by DES)."""
    bits = int.from_bytes(key7, "big")
    return bytes(((bits >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))


def des_encrypt(clear: bytes, key7: bytes) -> bytes:
    return DES.new(_des_key(key7), DES.MODE_ECB).encrypt(clear)


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    z = password_hash + bytes(5)
    return des_encrypt(challenge, z[0:7]) + des_encrypt(challenge, z[7:14]) + des_encrypt(challenge, z[14:21])


def generate_nt_response(authenticator_challenge: bytes, peer_challenge: bytes, username: str,
                         password: str) -> bytes:
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    return challenge_response(challenge, nt_password_hash(password))


def generate_authenticator_response(password: str, nt_response: bytes, peer_challenge: bytes,
                                    authenticator_challenge: bytes, username: str) -> str:
    """The "S=<40 hex digits>" string the authenticator sends in its Success packet."""
    password_hash_hash = md4(nt_password_hash(password))
    digest = hashlib.sha1(password_hash_hash + nt_response + MAGIC1).digest()
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    digest = hashlib.sha1(digest + challenge + MAGIC2).digest()
    return "S=" + digest.hex().upper()


def strip_domain(name: str) -> str:
    """'DOMAIN\\user' -> 'user' (the part MS-CHAPv2 hashes and we look up)."""
    return name.rsplit("\\", 1)[-1]


def chap_md5_response(ident: int, secret: str, challenge: bytes) -> bytes:
    """RFC 1994: MD5 over the identifier, the secret and the challenge."""
    return hashlib.md5(bytes((ident & 0xFF,)) + secret.encode() + challenge).digest()
