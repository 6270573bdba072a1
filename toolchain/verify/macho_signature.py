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


@dataclass(frozen=True)
class _Node:
    tag: int
    head: int  # the tag byte
    start: int  # first content byte
    end: int  # one past the last content byte
    outer_end: int  # one past the element (after an end-of-contents marker)


def _node(data: bytes, pos: int) -> _Node:
    """One BER/DER element (Apple's tools write CMS with indefinite lengths)."""
    head, tag = pos, data[pos]
    length = data[pos + 1]
    pos += 2
    if length == 0x80:  # indefinite: children until 00 00
        child = pos
        while data[child : child + 2] != b"\0\0":
            child = _node(data, child).outer_end
        return _Node(tag, head, pos, child, child + 2)
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise _Malformed("CMS element runs past its end")
    return _Node(tag, head, pos, pos + length, pos + length)


def _children(data: bytes, node: _Node) -> list[_Node]:
    found, pos = [], node.start
    while pos < node.end:
        child = _node(data, pos)
        found.append(child)
        pos = child.outer_end
    return found


def _oid(data: bytes, node: _Node) -> str:
    raw = data[node.start : node.end]
    parts = [raw[0] // 40, raw[0] % 40]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _signer_info(cms: bytes) -> _SignerInfo:
    content_info = _node(cms, 0)
    explicit = _children(cms, content_info)[1]
    signed_data = _children(cms, explicit)[0]
    parts = _children(cms, signed_data)
    certificates = tuple(cms[c.head : c.outer_end] for p in parts if p.tag == 0xA0 for c in _children(cms, p))
    signer = _children(cms, parts[-1])[0]
    fields = _children(cms, signer)
    sid, digest_algorithm = fields[1], fields[2]
    serial_node = _children(cms, sid)[1]
    serial = int.from_bytes(cms[serial_node.start : serial_node.end], "big", signed=True)
    digest_oid = _oid(cms, _children(cms, digest_algorithm)[0])
    attributes = next((f for f in fields if f.tag == 0xA0), None)
    if attributes is None:
        raise _Malformed("CMS signer without signed attributes")
    body = b"".join(cms[a.head : a.outer_end] for a in _children(cms, attributes))
    message_digest = b""
    for attribute in _children(cms, attributes):
        kind, values = _children(cms, attribute)
        if _oid(cms, kind) == _OID_MESSAGE_DIGEST:
            value = _children(cms, values)[0]
            message_digest = cms[value.start : value.end]
    signature_node = fields[fields.index(attributes) + 2]
    unsigned = next((f for f in fields if f.tag == 0xA1), None)
    timestamped = unsigned is not None and any(
        _oid(cms, _children(cms, a)[0]) == _OID_TIMESTAMP_TOKEN for a in _children(cms, unsigned)
    )
    return _SignerInfo(
        certificates=certificates,
        serial=serial,
        digest_oid=digest_oid,
        signed_attributes=b"\x31" + _der_length(len(body)) + body,
        message_digest=message_digest,
        signature=cms[signature_node.start : signature_node.end],
        timestamped=timestamped,
    )
