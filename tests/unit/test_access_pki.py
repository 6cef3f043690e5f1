"""The slice PKI (access.pki): certificates chain to the slice's CA with the usages OpenVPN
checks, everything is idempotent, a revoked serial is in a CRL signed by the CA, and a
revoked user is not silently reissued. Pure files in a temporary directory, no OpenVPN."""
from __future__ import annotations

import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from access import pki


def load_cert(path: str) -> x509.Certificate:
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read())


def load_crl(directory: str) -> x509.CertificateRevocationList:
    with open(pki.crl_path(directory), "rb") as handle:
        return x509.load_pem_x509_crl(handle.read())


def cn(cert: x509.Certificate) -> str:
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def test_ca_server_and_client_certificates_verify(tmp_path):
    d = str(tmp_path / "pki")
    ca = pki.ensure_ca(d, "plb")
    server = pki.ensure_server(d, "newyork")
    alice = pki.ensure_client(d, "alice")
    ca_cert = load_cert(ca.cert)
    assert cn(ca_cert) == "plb CA"
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(ca_cert.public_key(), ec.EllipticCurvePublicKey)
    for issued, role in ((server, ExtendedKeyUsageOID.SERVER_AUTH), (alice, ExtendedKeyUsageOID.CLIENT_AUTH)):
        cert = load_cert(issued.cert)
        cert.verify_directly_issued_by(ca_cert)  # raises if not signed by the CA
        assert pki.issued_by(cert, ca_cert)
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        assert cert.public_key().curve.name == "secp256r1"
        assert role in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert issued.serial == cert.serial_number
    assert cn(load_cert(server.cert)) == pki.server_common_name("newyork") == "server-newyork"
    assert cn(load_cert(alice.cert)) == "alice"


def test_private_keys_are_0600_and_match_their_certificates(tmp_path):
    d = str(tmp_path / "pki")
    alice = pki.ensure_client(d, "alice")  # creates the CA on the way
    for key_file in (pki.ca_paths(d)[1], alice.key):
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    from cryptography.hazmat.primitives import serialization
    with open(alice.key, "rb") as handle:
        key = serialization.load_pem_private_key(handle.read(), None)
    assert key.public_key().public_numbers() == load_cert(alice.cert).public_key().public_numbers()


def test_ensure_is_idempotent(tmp_path):
    d = str(tmp_path / "pki")
    first = (pki.ensure_ca(d), pki.ensure_server(d, "s"), pki.ensure_client(d, "alice"))
    contents = {f: open(os.path.join(d, f), "rb").read() for f in os.listdir(d) if not f.startswith(".")}
    second = (pki.ensure_ca(d), pki.ensure_server(d, "s"), pki.ensure_client(d, "alice"))
    assert first == second
    assert contents == {f: open(os.path.join(d, f), "rb").read() for f in os.listdir(d) if not f.startswith(".")}


def test_another_ca_does_not_verify(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    pki.ensure_ca(a)
    mallory = pki.ensure_client(b, "alice")
    assert not pki.issued_by(load_cert(mallory.cert), load_cert(pki.ca_paths(a)[0]))


def test_revoked_serial_is_in_the_crl_and_others_are_not(tmp_path):
    d = str(tmp_path / "pki")
    ca_cert = load_cert(pki.ensure_ca(d).cert)
    empty = load_crl(d)
    assert len(list(empty)) == 0 and empty.is_signature_valid(ca_cert.public_key())
    alice, bob = pki.ensure_client(d, "alice"), pki.ensure_client(d, "bob")
    serial = pki.revoke(d, "bob")
    assert serial == bob.serial
    crl = load_crl(d)
    assert crl.is_signature_valid(ca_cert.public_key())
    assert crl.issuer == ca_cert.subject
    assert crl.get_revoked_certificate_by_serial_number(bob.serial) is not None
    assert crl.get_revoked_certificate_by_serial_number(alice.serial) is None
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number > empty.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert crl.next_update_utc > crl.last_update_utc
    assert pki.revoked_users(d) == {"bob": bob.serial}
    # idempotent
    assert pki.revoke(d, "bob") == bob.serial
    assert len(list(load_crl(d))) == 1


def test_revoked_user_is_not_reissued_unless_asked(tmp_path):
    d = str(tmp_path / "pki")
    old = pki.ensure_client(d, "bob")
    pki.revoke(d, "bob")
    with pytest.raises(pki.PKIError, match="revoked"):
        pki.ensure_client(d, "bob")
    new = pki.ensure_client(d, "bob", reissue=True)
    assert new.serial != old.serial
    crl = load_crl(d)
    assert crl.get_revoked_certificate_by_serial_number(old.serial) is not None
    assert crl.get_revoked_certificate_by_serial_number(new.serial) is None
    assert pki.ensure_client(d, "bob") == new


def test_half_a_ca_is_refused(tmp_path):
    d = str(tmp_path / "pki")
    pki.ensure_ca(d)
    os.unlink(pki.ca_paths(d)[1])
    with pytest.raises(pki.PKIError, match="half a CA"):
        pki.ensure_client(d, "alice")


def test_certificate_of_a_replaced_ca_is_reissued(tmp_path):
    d = str(tmp_path / "pki")
    old = pki.ensure_server(d, "s")
    for path in pki.ca_paths(d):
        os.unlink(path)
    pki.ensure_ca(d)
    new = pki.ensure_server(d, "s")
    assert new.serial != old.serial
    assert pki.issued_by(load_cert(new.cert), load_cert(pki.ca_paths(d)[0]))


@pytest.mark.parametrize("bad", ["", "../x", "a b", "a/b", "-x"])
def test_names_that_would_escape_the_directory_are_refused(tmp_path, bad):
    with pytest.raises(pki.PKIError):
        pki.ensure_client(str(tmp_path / "pki"), bad)


def test_revoking_an_unknown_user_fails(tmp_path):
    d = str(tmp_path / "pki")
    pki.ensure_ca(d)
    with pytest.raises(pki.PKIError, match="no certificate"):
        pki.revoke(d, "nobody")
