"""Reading and checking a Mach-O slice's embedded code signature from its bytes.

Pure functions over bytes: inspection.py hands in what LIEF found (the
LC_CODE_SIGNATURE blob and the slice's bytes). LIEF 1.0 gives the blob but
does not parse it, and no ASN.1 library is a dependency, so the few
structures read here (Apple's SuperBlob and CodeDirectory, and the path to a
CMS SignerInfo's signed attributes) are walked by hand.

What is checked, as the loader and Gatekeeper would:
- every code page's hash against the CodeDirectory (a byte changed after
  signing shows as a bad page);
- the hashes of the special slots present (requirements, entitlements);
- for a Developer ID signature, that the CMS signature's messageDigest is
  the CodeDirectory's hash and that the signature over the signed
  attributes verifies with the signer certificate's key.
Trust in the certificate chain is not judged here: the policy compares the
signer certificate with the configured identity."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass

SUPERBLOB = 0xFADE0CC0
CODE_DIRECTORY = 0xFADE0C02
BLOB_WRAPPER = 0xFADE0B01  # the CMS signature

SLOT_CODE_DIRECTORY = 0
SLOT_REQUIREMENTS = 2
SLOT_ENTITLEMENTS = 5
SLOT_DER_ENTITLEMENTS = 7
SLOT_SIGNATURE = 0x10000

FLAG_ADHOC = 0x2
FLAG_RUNTIME = 0x10000  # the hardened runtime
FLAG_LINKER_SIGNED = 0x20000

_HASHES = {1: "sha1", 2: "sha256", 3: "sha256", 4: "sha384"}  # 3: SHA-256 truncated to 20 bytes
_OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_OID_TIMESTAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"
_OID_HASHES = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
    "1.3.14.3.2.26": "sha1",
}


@dataclass(frozen=True)
class MachOSignature:
    """One slice's code signature."""

    kind: str  # adhoc | developer-id (a CMS signature with a certificate) | linker (ad hoc, by ld)
    hardened_runtime: bool
    identifier: str
    team: str
    status: str  # "OK", or what is wrong: "bad page 3", "bad CMS signature", ...
    signer_sha256: str = ""  # SHA-256 of the signer certificate (DER); "" when ad hoc
    signer_subject: str = ""
    timestamped: bool = False  # an RFC 3161 timestamp token (notarization requires one)


class _Malformed(Exception):
    pass


def read_signature(blob: bytes, slice_bytes: bytes) -> MachOSignature:
    """The signature in `blob` (LC_CODE_SIGNATURE's data), checked against
    `slice_bytes` (the whole slice, from its first byte)."""
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        return _read(blob, slice_bytes)
    except (_Malformed, struct.error, IndexError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # A signature that cannot be read is a finding for the policy, never a crash.
        return MachOSignature("unknown", False, "", "", f"malformed signature: {exc}")


def _blobs(blob: bytes) -> dict[int, bytes]:
    magic, length, count = struct.unpack_from(">III", blob, 0)
    if magic != SUPERBLOB:
        raise _Malformed(f"superblob magic {magic:#x}")
    found: dict[int, bytes] = {}
    for index in range(count):
        slot, offset = struct.unpack_from(">II", blob, 12 + 8 * index)
        _magic, size = struct.unpack_from(">II", blob, offset)
        if offset + size > min(length, len(blob)):
            raise _Malformed(f"blob {slot:#x} runs past the signature")
        found[slot] = blob[offset : offset + size]
    return found


def _cstring(data: bytes, offset: int) -> str:
    if not offset:
        return ""
    end = data.index(b"\0", offset)
    return data[offset:end].decode("utf-8", "replace")


def _read(blob: bytes, slice_bytes: bytes) -> MachOSignature:
    blobs = _blobs(blob)
    directory = blobs.get(SLOT_CODE_DIRECTORY)
    if directory is None or struct.unpack_from(">I", directory, 0)[0] != CODE_DIRECTORY:
        raise _Malformed("no code directory")
    (_m, _len, version, flags, hash_offset, ident_offset, special_slots, code_slots, code_limit) = struct.unpack_from(
        ">IIIIIIIII", directory, 0
    )
    hash_size, hash_type, _platform, page_log2 = struct.unpack_from(">BBBB", directory, 36)
    team = _cstring(directory, struct.unpack_from(">I", directory, 48)[0]) if version >= 0x20200 else ""
    algorithm = _HASHES.get(hash_type)
    if algorithm is None:
        raise _Malformed(f"hash type {hash_type}")
    runtime = bool(flags & FLAG_RUNTIME)
    identifier = _cstring(directory, ident_offset)
    signature = blobs.get(SLOT_SIGNATURE, b"")
    cms = signature[8:] if len(signature) > 8 else b""
    kind = "developer-id" if cms else ("linker" if flags & FLAG_LINKER_SIGNED else "adhoc")

    def result(status: str, signer: str = "", subject: str = "", timestamped: bool = False) -> MachOSignature:
        return MachOSignature(kind, runtime, identifier, team, status, signer, subject, timestamped)

    def digest(data: bytes) -> bytes:
        return hashlib.new(algorithm, data).digest()[:hash_size]

    page = 1 << page_log2 if page_log2 else code_limit
    if code_limit > len(slice_bytes):
        return result(f"code limit {code_limit} past the end of the slice ({len(slice_bytes)} bytes)")
    for number in range(code_slots):
        start = number * page
        expected = directory[hash_offset + number * hash_size : hash_offset + (number + 1) * hash_size]
        if digest(slice_bytes[start : min(start + page, code_limit)]) != expected:
            return result(f"bad page {number} (bytes changed after signing)")
    for slot in (SLOT_REQUIREMENTS, SLOT_ENTITLEMENTS, SLOT_DER_ENTITLEMENTS):
        if slot > special_slots:
            continue
        expected = directory[hash_offset - slot * hash_size : hash_offset - (slot - 1) * hash_size]
        present = blobs.get(slot)
        if present is None:
            if any(expected):
                return result(f"special slot {slot} is hashed but missing")
        elif digest(present) != expected:
            return result(f"bad special slot {slot}")
    if not cms:
        return result("OK")
    return _check_cms(cms, directory, result)


def _check_cms(cms: bytes, directory: bytes, result: Callable[..., MachOSignature]) -> MachOSignature:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.serialization import Encoding

    signer = _signer_info(cms)
    certificates = [x509.load_der_x509_certificate(der) for der in signer.certificates]
    certificate = next((c for c in certificates if c.serial_number == signer.serial), None)
    if certificate is None:
        return result("CMS signature without its signer's certificate")
    fingerprint = hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()
    subject = certificate.subject.rfc4514_string()
    algorithm = _OID_HASHES.get(signer.digest_oid)
    if algorithm is None:
        return result(f"CMS digest algorithm {signer.digest_oid}", fingerprint, subject)
    if signer.message_digest != hashlib.new(algorithm, directory).digest():
        return result("CMS messageDigest is not the code directory's hash", fingerprint, subject)
    chosen = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[
        algorithm
    ]
    key = certificate.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signer.signature, signer.signed_attributes, padding.PKCS1v15(), chosen)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signer.signature, signer.signed_attributes, ec.ECDSA(chosen))
        else:
            return result(f"unsupported signer key type {type(key).__name__}", fingerprint, subject)
    except InvalidSignature:
        return result("bad CMS signature", fingerprint, subject)
    return result("OK", fingerprint, subject, signer.timestamped)


@dataclass(frozen=True)
class _SignerInfo:
    certificates: tuple[bytes, ...]  # DER, every certificate the CMS carries
    serial: int  # the signer's certificate serial number
    digest_oid: str
    signed_attributes: bytes  # DER, re-tagged as the SET OF that was signed
    message_digest: bytes
    signature: bytes
    timestamped: bool


def _signer_info(cms: bytes) -> _SignerInfo:
    """The one signer of a CMS SignedData, read with asn1crypto (it reads the BER with
    indefinite lengths Apple's tools write)."""
    from asn1crypto import cms as asn1_cms
    from asn1crypto import parser

    content = asn1_cms.ContentInfo.load(cms)
    if content["content_type"].native != "signed_data":
        raise _Malformed(f"CMS content type {content['content_type'].dotted}")
    signed_data = content["content"]
    certificates = tuple(c.chosen.dump() for c in signed_data["certificates"] or () if c.name == "certificate")
    signer = signed_data["signer_infos"][0]
    sid = signer["sid"]
    if sid.name != "issuer_and_serial_number":
        raise _Malformed("CMS signer named by key identifier")
    attributes = signer["signed_attrs"]
    if not attributes:
        raise _Malformed("CMS signer without signed attributes")
    message_digest = b""
    for attribute in attributes:
        if attribute["type"].dotted == _OID_MESSAGE_DIGEST:
            message_digest = attribute["values"][0].native
    unsigned = signer["unsigned_attrs"]
    timestamped = bool(unsigned) and any(a["type"].dotted == _OID_TIMESTAMP_TOKEN for a in unsigned)
    # What was signed: the attributes as encoded, under a universal SET OF tag instead of [0].
    signed = parser.emit(0, 1, 17, b"".join(a.dump() for a in attributes))
    return _SignerInfo(
        certificates=certificates,
        serial=sid.chosen["serial_number"].native,
        digest_oid=signer["digest_algorithm"]["algorithm"].dotted,
        signed_attributes=signed,
        message_digest=message_digest,
        signature=signer["signature"].native,
        timestamped=timestamped,
    )
