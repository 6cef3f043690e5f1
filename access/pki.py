"""A slice's OpenVPN PKI: one CA, server and client certificates, and the revocation list.

Everything is EC (P-256, ECDSA-SHA256), built with Python `cryptography`. The caller owns
the directory (one per slice); its layout is compiler.access_types.pki_layout's.

The `ensure_*` functions are idempotent: an existing, valid item is kept; one that does not
chain to the current CA (or is expiring) is reissued. A CA is never replaced silently: a
half-present CA (key without certificate or the reverse) is an error. `revoke` adds the
user's current serial to the CRL, written atomically; OpenVPN re-reads a changed CRL file
on every new TLS handshake. A revoked user is not reissued by `ensure_client` unless asked
(`reissue=True`), so an `up` from an unchanged YAML does not undo a revocation.

The certificate and CRL builders at the top are pure (no files); the rest is I/O.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from dataclasses import dataclass
from typing import Iterable, Iterator

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from compiler.access_types.pki_layout import NAME_RE, ca_paths, crl_path, leaf_paths, server_common_name

from .spec import atomic_write

CA_DAYS = 3650
CERT_DAYS = 3650
CRL_DAYS = 3650  # OpenSSL rejects every client once the CRL's nextUpdate has passed
RENEW_BEFORE_DAYS = 30
BACKDATE = dt.timedelta(hours=1)  # tolerate clocks a little behind ours


class PKIError(Exception):
    pass


# --------------------------------------------------------------------------- pure builders

def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def make_ca(key: ec.EllipticCurvePrivateKey, common_name: str, now: dt.datetime | None = None,
            days: int = CA_DAYS) -> x509.Certificate:
    now = now or _now()
    public = key.public_key()
    return (x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256()))


def issue(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, public_key, common_name: str,
          role: str, now: dt.datetime | None = None, days: int = CERT_DAYS) -> x509.Certificate:
    """A leaf certificate for `role` "server" (TLS server auth) or "client" (TLS client auth),
    with the key usage OpenVPN's `remote-cert-tls` requires."""
    if role not in ("server", "client"):
        raise ValueError(f"role must be server or client, not {role!r}")
    now = now or _now()
    eku = ExtendedKeyUsageOID.SERVER_AUTH if role == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(ca_cert.subject)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=role == "server",
                                         key_cert_sign=False, crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(ca_key, hashes.SHA256()))


def make_crl(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
             revoked: Iterable[tuple[int, dt.datetime]], number: int, now: dt.datetime | None = None,
             days: int = CRL_DAYS) -> x509.CertificateRevocationList:
    now = now or _now()
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(ca_cert.subject)
               .last_update(now - BACKDATE).next_update(now + dt.timedelta(days=days))
               .add_extension(x509.CRLNumber(number), critical=False))
    for serial, when in sorted(revoked):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build())
    return builder.sign(ca_key, hashes.SHA256())


def issued_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    """True when `cert` carries a valid signature of `ca_cert`'s key."""
    try:
        cert.verify_directly_issued_by(ca_cert)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


# --------------------------------------------------------------------------- files

@dataclass(frozen=True)
class Issued:
    """Paths of one certificate and its key, and the certificate's serial."""

    cert: str
    key: str
    serial: int
    common_name: str


def _check_name(kind: str, name: str) -> None:
    if not NAME_RE.match(name):
        raise PKIError(f"{kind} name {name!r} must match {NAME_RE.pattern}")


@contextlib.contextmanager
def _locked(directory: str) -> Iterator[None]:
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(directory, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _load_cert(path: str) -> x509.Certificate | None:
    try:
        with open(path, "rb") as handle:
            return x509.load_pem_x509_certificate(handle.read())
    except FileNotFoundError:
        return None


def _load_key(path: str):
    try:
        with open(path, "rb") as handle:
            return serialization.load_pem_private_key(handle.read(), password=None)
    except FileNotFoundError:
        return None


def _revocations(directory: str) -> dict:
    try:
        with open(os.path.join(directory, "revoked.json")) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {"crl_number": 0, "revoked": []}


def _write_crl(directory: str, ca_key, ca_cert, state: dict) -> None:
    state["crl_number"] = state.get("crl_number", 0) + 1
    entries = [(int(r["serial"]), dt.datetime.fromisoformat(r["at"])) for r in state["revoked"]]
    crl = make_crl(ca_key, ca_cert, entries, state["crl_number"])
    atomic_write(os.path.join(directory, "revoked.json"), json.dumps(state, indent=1, sort_keys=True) + "\n", 0o600)
    atomic_write(crl_path(directory), crl.public_bytes(serialization.Encoding.PEM), 0o644)


def _load_ca(directory: str):
    cert_file, key_file = ca_paths(directory)
    cert, key = _load_cert(cert_file), _load_key(key_file)
    if (cert is None) != (key is None):
        raise PKIError(f"{directory}: half a CA ({'ca.key' if key is None else 'ca.crt'} missing); "
                       "refusing to replace it (every client certificate would stop working)")
    if cert is not None and cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise PKIError(f"{directory}: ca.key does not match ca.crt")
    return cert, key


def ensure_ca(directory: str, label: str = "vispd") -> Issued:
    """The CA of `directory`, created (with an empty CRL) if absent."""
    with _locked(directory):
        return _ensure_ca(directory, label)


def _ensure_ca(directory: str, label: str = "vispd") -> Issued:
    cert, key = _load_ca(directory)
    cert_file, key_file = ca_paths(directory)
    if cert is None:
        key = new_key()
        cert = make_ca(key, f"{label} CA")
        atomic_write(key_file, key_pem(key), 0o600)
        atomic_write(cert_file, cert_pem(cert), 0o644)
    if not os.path.exists(crl_path(directory)):
        _write_crl(directory, key, cert, _revocations(directory))
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return Issued(cert_file, key_file, cert.serial_number, cn)


def _revoked_serials(directory: str) -> set[int]:
    return {int(r["serial"]) for r in _revocations(directory)["revoked"]}


def _ensure_leaf(directory: str, kind: str, name: str, common_name: str, role: str, reissue: bool) -> Issued:
    _ensure_ca(directory)
    ca_cert, ca_key = _load_ca(directory)
    cert_file, key_file = leaf_paths(directory, kind, name)
    cert, key = _load_cert(cert_file), _load_key(key_file)
    revoked = _revoked_serials(directory)
    usable = (cert is not None and key is not None and issued_by(cert, ca_cert)
              and cert.public_key().public_numbers() == key.public_key().public_numbers()
              and cert.not_valid_after_utc - _now() > dt.timedelta(days=RENEW_BEFORE_DAYS))
    if cert is not None and cert.serial_number in revoked and not reissue:
        raise PKIError(f"{kind} {name!r} is revoked (serial {cert.serial_number:x}); pass reissue=True "
                       "to give it a new certificate")
    if usable and cert.serial_number not in revoked:
        return Issued(cert_file, key_file, cert.serial_number, common_name)
    key = new_key()
    cert = issue(ca_key, ca_cert, key.public_key(), common_name, role)
    atomic_write(key_file, key_pem(key), 0o600)
    atomic_write(cert_file, cert_pem(cert), 0o644)
    return Issued(cert_file, key_file, cert.serial_number, common_name)


def ensure_server(directory: str, name: str) -> Issued:
    """The certificate of OpenVPN access point `name` (CN `server-NAME`)."""
    _check_name("server", name)
    with _locked(directory):
        return _ensure_leaf(directory, "server", name, server_common_name(name), "server", reissue=False)


def ensure_client(directory: str, user: str, reissue: bool = False) -> Issued:
    """The certificate of `user` (CN = the user name). Raises PKIError for a revoked user
    unless `reissue` (then a new key and certificate replace the revoked ones)."""
    _check_name("user", user)
    with _locked(directory):
        return _ensure_leaf(directory, "client", user, user, "client", reissue=reissue)


def revoke(directory: str, user: str) -> int:
    """Revoke `user`'s current certificate: its serial joins the CRL, which is rewritten
    atomically. Idempotent; returns the serial. The key and certificate files stay (they
    are useless now) until a `reissue`."""
    _check_name("user", user)
    with _locked(directory):
        ca_cert, ca_key = _load_ca(directory)
        if ca_cert is None:
            raise PKIError(f"{directory}: no CA")
        cert = _load_cert(leaf_paths(directory, "client", user)[0])
        if cert is None:
            raise PKIError(f"no certificate for user {user!r} in {directory}")
        state = _revocations(directory)
        if cert.serial_number not in {int(r["serial"]) for r in state["revoked"]}:
            state["revoked"].append({"serial": str(cert.serial_number), "user": user,
                                     "at": _now().replace(microsecond=0).isoformat()})
        _write_crl(directory, ca_key, ca_cert, state)
        return cert.serial_number


def refresh_crl(directory: str) -> None:
    """Re-sign the CRL (new lastUpdate/nextUpdate) without changing its entries."""
    with _locked(directory):
        ca_cert, ca_key = _load_ca(directory)
        if ca_cert is None:
            raise PKIError(f"{directory}: no CA")
        _write_crl(directory, ca_key, ca_cert, _revocations(directory))


def revoked_users(directory: str) -> dict[str, int]:
    """{user: serial} of every revocation recorded in `directory`."""
    return {r["user"]: int(r["serial"]) for r in _revocations(directory)["revoked"]}


def read_client_material(directory: str, user: str) -> tuple[str, str, str]:
    """(CA certificate, client certificate, client key) as PEM text, for a profile."""
    cert_file, key_file = leaf_paths(directory, "client", user)
    texts = []
    for path in (ca_paths(directory)[0], cert_file, key_file):
        try:
            with open(path) as handle:
                texts.append(handle.read())
        except FileNotFoundError:
            raise PKIError(f"{path} missing (ensure_ca/ensure_client first)") from None
    return texts[0], texts[1], texts[2]
