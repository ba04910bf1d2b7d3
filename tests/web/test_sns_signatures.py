"""Signed SNS messages: SES notifications trusted by signature and topic, no secret."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from mailer.common.errors import ValidationError
from mailer.delivery import sns
from mailer.models import Reader, ReaderStatus
from tests.support import factories

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-bounces"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem"


@pytest.fixture(scope="module")
def signing_key() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def fetched(signing_key, monkeypatch) -> list[str]:
    urls: list[str] = []
    monkeypatch.setattr(sns, "_certificates", {})
    monkeypatch.setattr(sns, "fetch_certificate", lambda url: urls.append(url) or signing_key[1])
    return urls


def signed(key: rsa.RSAPrivateKey, message: dict, version: str = "2", **changes: str) -> dict:
    envelope = {"Type": "Notification", "MessageId": "6f0c-1", "TopicArn": TOPIC,
                "Subject": "Amazon SES Email Event Notification",
                "Message": json.dumps(message), "Timestamp": "2026-11-25T03:00:00.000Z",
                "SignatureVersion": version, "SigningCertURL": CERT_URL}
    algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()  # noqa: S303
    signature = key.sign(sns.string_to_sign(envelope), padding.PKCS1v15(), algorithm)
    envelope["Signature"] = base64.b64encode(signature).decode()
    envelope.update(changes)
    return envelope


BOUNCE = {"notificationType": "Bounce", "bounce": {
    "bounceType": "Permanent", "bounceSubType": "General",
    "bouncedRecipients": [{"emailAddress": "signed-gone@example.org"}]}}


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_correctly_signed_message_verifies(signing_key, fetched, version):
    sns.verify_sns_message(signed(signing_key[0], BOUNCE, version), [TOPIC])
    sns.verify_sns_message(signed(signing_key[0], BOUNCE, version), [TOPIC])
    assert fetched == [CERT_URL]  # the certificate is fetched once, then kept


@pytest.mark.parametrize(("changes", "field"), [
    ({"Message": json.dumps({"notificationType": "Bounce", "forged": True})}, "Signature"),
    ({"TopicArn": "arn:aws:sns:eu-west-1:999:someone-elses"}, "TopicArn"),
    ({"SigningCertURL": "https://sns.eu-west-1.amazonaws.com.evil.example/x.pem"}, "SigningCertURL"),
    ({"SigningCertURL": "http://sns.eu-west-1.amazonaws.com/x.pem"}, "SigningCertURL"),
    # An S3 bucket named "sns.something" has a host that starts and ends like SNS's.
    ({"SigningCertURL": "https://sns.evil.s3.amazonaws.com/x.pem"}, "SigningCertURL"),
    ({"SigningCertURL": "https://x@sns.eu-west-1.amazonaws.com/x.pem"}, "SigningCertURL"),
    ({"SignatureVersion": "3"}, "SignatureVersion"),
    ({"Signature": "not base64!"}, "Signature"),
    ({"Type": "Surprise"}, "Type"),
])
def test_tampered_or_foreign_messages_are_refused(signing_key, fetched, changes, field):
    with pytest.raises(ValidationError) as info:
        sns.verify_sns_message(signed(signing_key[0], BOUNCE, **changes), [TOPIC])
    assert info.value.status == 403 and field in info.value.fields


@pytest.fixture
def signature_mode(rt, monkeypatch):
    monkeypatch.setattr(rt, "settings", dataclasses.replace(
        rt.settings, bounce_webhook_secret="", sns_topic_arns=(TOPIC,)))


def test_the_ses_webhook_accepts_signed_messages_without_a_secret(
        client, session, signing_key, fetched, signature_mode):
    reader = factories.reader(session, "signed-gone@example.org")
    r = client.post("/webhooks/ses", data=json.dumps(signed(signing_key[0], BOUNCE)),
                    headers={"Content-Type": "text/plain; charset=UTF-8"})
    assert r.status_code == 200 and r.json["suppressed"] == 1
    session.expire_all()
    assert session.get(Reader, reader.id).status == ReaderStatus.BOUNCED


def test_the_ses_webhook_refuses_a_forged_signature_and_changes_nothing(
        client, session, signing_key, fetched, signature_mode):
    reader = factories.reader(session, "signed-gone@example.org")
    forged = signed(signing_key[0], {"notificationType": "Complaint"},
                    Message=json.dumps(BOUNCE))
    r = client.post("/webhooks/ses", data=json.dumps(forged))
    assert r.status_code == 403 and r.is_json and "Signature" in r.json["fields"]
    session.expire_all()
    assert session.get(Reader, reader.id).status == ReaderStatus.CONFIRMED


def test_signature_mode_does_not_open_the_generic_webhook(client, signature_mode):
    r = client.post("/webhooks/bounces", json={"type": "complaint", "email": "a@example.org"})
    assert r.status_code == 403 and r.is_json
